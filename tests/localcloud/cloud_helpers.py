"""What the local cloud's own tests share: a cloud of their own, and probes run inside
server namespaces. Root only (namespaces, loop devices, mounts, cgroups, nftables)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cellar.config import Settings
from cellar.domain.specs import FlavorSpec
from cellar.localcloud.servers import AgentCommand, ServerInfo, Servers

root = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="the local cloud needs root (network namespaces, loop devices, mounts, cgroups)",
)

SMALL = FlavorSpec(id="small", name="small", ram_mb=512, vcpus=1)
LARGE = FlavorSpec(id="large", name="large", ram_mb=1024, vcpus=2)
SLEEPER = ["sleep", "1000"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cloud_settings(tmp_path: Path) -> Settings:
    """A cloud of its own: a fresh bridge name and network (never `cellar serve`'s)."""
    return Settings(
        state_dir=tmp_path / "state",
        local_bridge=f"ct{secrets.token_hex(3)}",
        local_cidr=f"10.252.{secrets.randbelow(256)}.0/24",
        api_port=free_port(),
    )


def agent(argv: list[str]) -> AgentCommand:
    """A stand-in for the guest agent: `argv`, whatever the config drive."""
    return lambda config_dir: argv


def create(
    cloud: Servers,
    argv: list[str] = SLEEPER,
    *,
    groups: tuple[str, ...] = (),
    user_data: dict[str, str] | None = None,
) -> ServerInfo:
    """An ACTIVE server of `cloud` (same state) whose agent is `argv`."""
    servers = Servers(cloud.settings, cloud.state, agent_command=agent(argv), grace_s=2.0)
    server = servers.create(
        name=f"s-{secrets.token_hex(4)}",
        flavor=SMALL,
        image="test",
        security_group_ids=groups,
        user_data=user_data,
        metadata={"purpose": "test"},
    )
    assert server.status == "ACTIVE"
    return server


_PROBE = """
import socket, sys
s = socket.socket()
s.settimeout(float(sys.argv[3]))
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("connected")
except ConnectionRefusedError:
    print("refused")
except TimeoutError:
    print("timeout")
except OSError as exc:
    print(exc)
"""


def probe(netns: str | None, host: str, port: int, timeout: float = 2.0) -> str:
    """A TCP connect from inside `netns` (None: the host): connected, refused or timeout."""
    argv = [sys.executable, "-c", _PROBE, host, str(port), str(timeout)]
    if netns is not None:
        argv = ["ip", "netns", "exec", netns, *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout} s")
        time.sleep(0.05)


@contextmanager
def listening(port: int) -> Iterator[socket.socket]:
    """A TCP listener of the host on every address (as a careless host service is)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(8)
        yield s
