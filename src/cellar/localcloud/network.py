"""The local cloud's network: one bridge, and per server a namespace plugged into it.

The bridge (`settings.local_bridge`) carries the first host of `settings.local_cidr`: it is
the host's address on the servers' network and their default gateway. Each server is a
network namespace with one veth pair into the bridge, its own address, and lo up.

Every kernel object is named from the bridge and the server id, so that a restarted
cloud finds its objects again and two clouds on one host (a test's and `cellar serve`'s)
never touch each other's: namespace `<bridge>-<first 8 of id>`, host-side veth
`v<tag><first 8 of id>` where `tag` is a short hash of the bridge name (a Linux interface
name has at most 15 characters, too few for the bridge name itself).

Server rows (kind `SERVER`) are written by `servers.py`; the firewall and the cleanup
read them too, which is why the kind is named here, at the bottom of the local cloud.
"""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cellar.config import Settings
from cellar.localcloud.system import LocalCloudError, run

SERVER = "server"
# Where `ip netns add` puts its namespaces (iproute2's NETNS_RUN_DIR).
NETNS_DIR = Path("/run/netns")
# The server's side of its veth pair, inside its namespace.
SERVER_NIC = "eth0"
_IFNAMSIZ = 15


@dataclass(frozen=True)
class Network:
    """The names and addresses of one local cloud's network."""

    bridge: str
    cidr: ipaddress.IPv4Network

    @classmethod
    def from_settings(cls, settings: Settings) -> Network:
        bridge = settings.local_bridge
        if not 0 < len(bridge) <= _IFNAMSIZ or not bridge.replace("-", "").isalnum():
            raise LocalCloudError(
                f"local_bridge {bridge!r} is not a usable interface name "
                f"(1 to {_IFNAMSIZ} letters, digits or '-')."
            )
        return cls(bridge, ipaddress.IPv4Network(settings.local_cidr))

    @property
    def gateway(self) -> str:
        """The bridge's address: the host, as the servers see it."""
        return str(next(self.cidr.hosts()))

    @property
    def tag(self) -> str:
        return hashlib.sha1(self.bridge.encode()).hexdigest()[:4]

    @property
    def netns_prefix(self) -> str:
        return f"{self.bridge}-"

    @property
    def veth_prefix(self) -> str:
        return f"v{self.tag}"

    def netns(self, server_id: str) -> str:
        return f"{self.netns_prefix}{server_id[:8]}"

    def veth(self, server_id: str) -> str:
        return f"{self.veth_prefix}{server_id[:8]}"


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def namespace_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def namespaces(net: Network) -> list[str]:
    """The named network namespaces of this cloud's servers (whether a row owns them
    or not). The whole name is matched: bridge `ct1`'s prefix would also match `ct1-x`'s."""
    if not NETNS_DIR.is_dir():
        return []
    pattern = re.compile(re.escape(net.netns_prefix) + "[0-9a-f]{8}")
    return sorted(name for name in os.listdir(NETNS_DIR) if pattern.fullmatch(name))


def veths() -> dict[str, str | None]:
    """Every veth of the host: its name and its master (a bridge), if any."""
    out = run(["ip", "-j", "link", "show", "type", "veth"]).stdout
    return {link["ifname"]: link.get("master") for link in json.loads(out or "[]")}


def ensure_bridge(net: Network) -> None:
    """The bridge, up, with the gateway address (idempotent)."""
    if not link_exists(net.bridge):
        result = run(["ip", "link", "add", net.bridge, "type", "bridge"], check=False)
        # Another process may have made it meanwhile: only a missing bridge is an error.
        if result.returncode != 0 and not link_exists(net.bridge):
            raise LocalCloudError(f"Cannot create bridge {net.bridge}: {result.stderr.strip()}")
    run(["ip", "addr", "replace", f"{net.gateway}/{net.cidr.prefixlen}", "dev", net.bridge])
    run(["ip", "link", "set", net.bridge, "up"])


def remove_bridge(net: Network) -> None:
    if link_exists(net.bridge):
        run(["ip", "link", "del", net.bridge])


def plug(net: Network, server_id: str, address: str) -> None:
    """The server's namespace, veth pair into the bridge, address, lo and default route.

    Idempotent: a reboot or a recovery after a host restart runs it again.
    """
    ns, veth = net.netns(server_id), net.veth(server_id)
    if not namespace_exists(ns):
        run(["ip", "netns", "add", ns])
    if not link_exists(veth):
        # Born enslaved to the bridge, with its peer already inside the namespace: there is
        # no moment when a half-made veth could be mistaken for another cloud's.
        pair = ["type", "veth", "peer", "name", SERVER_NIC, "netns", ns]
        run(["ip", "link", "add", veth, "master", net.bridge, *pair])
    run(["ip", "link", "set", veth, "up"])
    prefix = f"{address}/{net.cidr.prefixlen}"
    run(["ip", "-n", ns, "addr", "replace", prefix, "dev", SERVER_NIC])
    run(["ip", "-n", ns, "link", "set", SERVER_NIC, "up"])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    run(["ip", "-n", ns, "route", "replace", "default", "via", net.gateway])


def unplug(net: Network, server_id: str) -> None:
    remove_namespace(net.netns(server_id), net.veth(server_id))


def remove_namespace(ns: str, veth: str | None = None) -> None:
    """Delete the veth, then the namespace (both may be gone already)."""
    # Deleting the veth first is synchronous; a namespace's veth otherwise lingers for
    # a second or two after `ip netns del`, and a check right after would still see it.
    if veth and link_exists(veth):
        run(["ip", "link", "del", veth], check=False)
    if namespace_exists(ns):
        run(["ip", "netns", "del", ns])


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` across processes and threads (each call opens its own
    file, and `flock` locks belong to the open file): the server layer holds one per
    server, the firewall one for every namespace's table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
