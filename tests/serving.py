"""A real `cellar serve` process tree for tests, and the `cellar` command as a subprocess."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cellar(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cellar", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def cellar_env(state_dir: Path, **extra: str) -> dict[str, str]:
    return dict(
        os.environ,
        CELLAR_STATE_DIR=str(state_dir),
        CELLAR_API_PORT=str(free_port()),
        CELLAR_LOG_LEVEL="WARNING",
        CELLAR_POLL_INTERVAL_S="0.02",
        **extra,
    )


@dataclass
class Served:
    env: dict[str, str]
    url: str
    token: str
    project: str
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(default_factory=lambda: Path("/dev/null"))

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/v1.0/{self.project}",
            headers={"X-Auth-Token": self.token},
            timeout=60,
        )

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cellar", "serve"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"cellar serve did not start:\n{self.log.read_text()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL `cellar serve` (its task managers get SIGTERM as it dies)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def serving(env: dict[str, str], project: str = "ops") -> Iterator[Served]:
    issued = cellar(env, "token", "issue", "--project", project)
    assert issued.returncode == 0, issued.stderr
    served = Served(
        env=env,
        url=f"http://127.0.0.1:{env['CELLAR_API_PORT']}",
        token=issued.stdout.strip().splitlines()[-1],
        project=project,
        log=Path(env["CELLAR_STATE_DIR"]) / "serve.log",
    )
    served.start()
    try:
        yield served
    finally:
        served.stop()


def wait_until(what: str, check: object, timeout: float = 120, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def holds_name(state_dir: str | Path, name: str) -> bool:
    """Whether a live `cellar taskmanager --name NAME` holds its name's lock. It takes it
    only after installing its signal handlers, so from then on a SIGTERM stops it cleanly;
    before that (a fresh clone compiles and migrates for seconds) SIGTERM kills it."""
    path = Path(state_dir) / "taskmanagers" / f"{name}.lock"
    if not path.exists():
        return False
    with path.open("ab") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
