"""A server's memory and CPU cgroups (v1), and the processes that run in them.

cgroups are v1 here: the v2 hierarchy has only `hugetlb`, so `memory.max` is unusable.
A server gets `<memory root><own path>/<bridge>/<server id>` and the same under the cpu
root, where `<own path>` is the creating process's own cgroup of that controller (the
cloud's servers count against whatever limits the control plane itself runs under).
Their full paths are recorded in the server's row, since another process may run under
another cgroup and must still find them.

A process is started in a server by joining its cgroups first and only then entering its
namespace: `ip netns exec` mounts a fresh `/sys`, in which `/sys/fs/cgroup/...` does not
exist, and a child inherits the cgroups of its parent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from cellar.localcloud.system import LocalCloudError, run

ROOT = Path("/sys/fs/cgroup")
CFS_PERIOD_US = 100_000


def own_path(controller: str) -> str:
    """The calling process's cgroup path in the v1 hierarchy of `controller`."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    raise LocalCloudError(f"No cgroup v1 hierarchy has the {controller} controller.")


def cloud_dirs(bridge: str) -> tuple[Path, Path]:
    """The parents of this process's server cgroups: (memory, cpu)."""
    memory, cpu = (ROOT / c / own_path(c).lstrip("/") / bridge for c in ("memory", "cpu"))
    return memory, cpu


def alive(pid: int | None) -> bool:
    """Whether a process runs with this id (a zombie counts as gone)."""
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass(frozen=True)
class ServerCgroups:
    memory: Path
    cpu: Path

    @classmethod
    def new(cls, bridge: str, server_id: str) -> ServerCgroups:
        memory, cpu = cloud_dirs(bridge)
        return cls(memory / server_id, cpu / server_id)

    @classmethod
    def from_data(cls, data: dict[str, str]) -> ServerCgroups:
        return cls(Path(data["memory"]), Path(data["cpu"]))

    def to_data(self) -> dict[str, str]:
        return {"memory": str(self.memory), "cpu": str(self.cpu)}

    @property
    def dirs(self) -> tuple[Path, Path]:
        return (self.memory, self.cpu)

    def create(self) -> None:
        for directory in self.dirs:
            directory.mkdir(parents=True, exist_ok=True)

    def set_limits(self, ram_mb: int, vcpus: int) -> None:
        # Lowering the memory limit below what the server uses makes the kernel reclaim
        # first, and the write fails (EBUSY) if it cannot: the resize then fails.
        _write(self.memory / "memory.limit_in_bytes", str(ram_mb * 2**20))
        _write(self.cpu / "cpu.cfs_period_us", str(CFS_PERIOD_US))
        _write(self.cpu / "cpu.cfs_quota_us", str(vcpus * CFS_PERIOD_US))

    def limits(self) -> tuple[int, int]:
        """(memory limit in bytes, CFS quota in microseconds per period)."""
        memory = int((self.memory / "memory.limit_in_bytes").read_text())
        return memory, int((self.cpu / "cpu.cfs_quota_us").read_text())

    def pids(self) -> list[int]:
        found: set[int] = set()
        for directory in self.dirs:
            with contextlib.suppress(FileNotFoundError):  # not made yet, or removed
                found.update(int(p) for p in (directory / "cgroup.procs").read_text().split())
        return sorted(found)

    def spawn(self, netns: str, argv: list[str], log: Path) -> int:
        """Start `argv` in these cgroups and in `netns`, detached: a new session, stdin
        from /dev/null, stdout and stderr appended to `log`. Returns its pid.

        The shell joins the cgroups, starts the command in the background and exits, so
        the command is re-parented to init and nobody here has to reap it.
        """
        script = (
            'echo $$ > "$1/cgroup.procs" && echo $$ > "$2/cgroup.procs" || exit 1\n'
            "ns=$3 log=$4; shift 4\n"
            'setsid ip netns exec "$ns" "$@" </dev/null >>"$log" 2>&1 &\n'
            "echo $!\n"
        )
        result = run(
            ["sh", "-c", script, "sh", str(self.memory), str(self.cpu), netns, str(log), *argv]
        )
        return int(result.stdout.strip())

    def kill_all(self, grace_s: float) -> None:
        """SIGTERM every process, SIGKILL what is left after `grace_s`; wait until none."""
        _signal(self.pids(), signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.02)
        deadline = time.monotonic() + 5.0
        # Again and again: a process may fork while it is being killed.
        while pids := self.pids():
            if time.monotonic() > deadline:
                raise LocalCloudError(f"Processes {pids} in {self.memory} do not die.")
            _signal(pids, signal.SIGKILL)
            time.sleep(0.02)

    def remove(self) -> None:
        """Remove both cgroups (their processes must be gone: see `kill_all`)."""
        for directory in self.dirs:
            if directory.exists():
                try:
                    directory.rmdir()
                except OSError as exc:
                    raise LocalCloudError(f"Cannot remove cgroup {directory}: {exc}") from exc


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as exc:
        raise LocalCloudError(f"Cannot write {value} to {path}: {exc}") from exc


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
