"""Backups that fail, and a backup taken under writes, through `cellar serve` on the local
cloud (issue 11, point 6: nothing lost, nothing faked).

One `cellar serve` and one instance of a few hundred MB (so that a full backup lasts
seconds) serve every test in turn; each leaves it ACTIVE. A failed backup (the
repository's stanza full or unwritable, the guest's pgBackRest server or its agent killed
mid-backup) ends FAILED with a reason that names the cause, leaves no half set that shows
as a backup, and leaves the instance ACTIVE: the next backup completes. A backup taken
while a writer commits row after row restores to a gap-free prefix of the rows, at least
those committed before it started and at most those committed before it ended.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_backups_local import FRESH, backup, completed, idle
from test_local_serve import connect, create, delete_all, local_settings, show, wait_active

from cellar.domain.backups import stanza_name
from cellar.domain.specs import resource_name
from cellar.localcloud.backups import BackupRepository
from cellar.localcloud.network import SERVER
from serving import Served, cellar_env, free_port, serving, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local cloud needs root")

# Rows of ~150 bytes of random text: ~300 MB, a full backup of a few seconds.
BIG_ROWS = 2_000_000


@dataclass
class Source:
    served: Served
    http: httpx.Client
    iid: str
    address: str
    repository: BackupRepository

    @property
    def stanza(self) -> str:
        return stanza_name(self.iid)

    @property
    def stanza_dir(self) -> Path:
        """The stanza's backup sets in the repository (its WAL is elsewhere)."""
        return self.repository.repo / "backup" / self.stanza

    @property
    def data_dir(self) -> Path:
        [row] = self.repository.state.find(SERVER, resource_name(self.iid))
        return Path(row.data["data_dir"])

    def valid_labels(self) -> list[str]:
        """The sets pgBackRest itself lists for the stanza."""
        return [b["label"] for b in self.repository.info(self.stanza).get("backup", [])]


@pytest.fixture(scope="module", name="src")
def source_fixture() -> Iterator[Source]:
    """`cellar serve` with one ACTIVE instance holding ~300 MB (table `big`)."""
    state = Path("/tmp") / f"cellar-test-{uuid.uuid4().hex[:8]}"
    state.mkdir(mode=0o755)
    env = cellar_env(
        state,
        CELLAR_BACKEND="local",
        CELLAR_RESOURCE_MANAGER="native",
        CELLAR_LOCAL_BRIDGE=f"ct{uuid.uuid4().hex[:6]}",
        CELLAR_LOCAL_CIDR=f"10.252.{random.randrange(1, 250)}.0/24",
        CELLAR_LOCAL_DNS_PORT=str(free_port()),
        CELLAR_GUEST_TIMEOUT_S="120",
    )
    settings = local_settings(env)
    try:
        with serving(env) as served, served.client() as http:
            iid = create(http, "source", volume={"size": 2})
            address = wait_active(http, iid)["ip"][0]
            with connect(address) as conn:
                conn.execute(
                    "CREATE TABLE big AS SELECT g AS id, md5(random()::text) || "
                    "md5(random()::text) || md5(random()::text) || md5(random()::text) AS v "
                    "FROM generate_series(1, %s) g",
                    (BIG_ROWS,),
                )
            yield Source(served, http, iid, address, BackupRepository(settings))
            delete_all(served, [iid])
    finally:
        from cellar.localcloud.cleanup import leftovers, teardown

        left = leftovers(settings)
        teardown(settings)
        shutil.rmtree(state, ignore_errors=True)
        assert left == [], f"left on the host: {left}"


def settled(http: httpx.Client, bid: str, timeout: float = 300) -> dict[str, Any]:
    """The backup once it is COMPLETED or FAILED."""

    def done() -> bool:
        status = http.get(f"/backups/{bid}").json()["backup"]["status"]
        assert status in ("NEW", "BUILDING", "COMPLETED", "FAILED"), status
        return status in ("COMPLETED", "FAILED")

    wait_until(f"backup {bid} to end", done, timeout=timeout, every=0.2)
    return dict(http.get(f"/backups/{bid}").json()["backup"])


def failed(http: httpx.Client, bid: str, timeout: float = 300) -> dict[str, Any]:
    found = settled(http, bid, timeout)
    assert found["status"] == "FAILED", found
    assert found["fail_reason"], found
    assert found["locationRef"] is None and found["size"] is None, found
    return found


def active_again(src: Source) -> None:
    wait_until("the instance ACTIVE again", lambda: idle(src.http, src.iid), timeout=60)


def listed(src: Source) -> dict[str, str]:
    """The instance's backups as a user lists them: id -> status."""
    found = src.http.get("/backups", params={"instance_id": src.iid}).json()["backups"]
    return {b["id"]: b["status"] for b in found}


def running_backup(src: Source, bid: str) -> None:
    """Until the backup is BUILDING and pgBackRest has copied some of the data into a new
    set's directory (pgBackRest 2.45's `info` tells no progress)."""
    known = set(src.valid_labels())

    def copied() -> int:
        total = 0
        for label in src.stanza_dir.iterdir():
            if label.is_dir() and label.name not in known and label.name[:8].isdigit():
                for path in (label / "pg_data").rglob("*"):
                    with suppress(OSError):
                        total += path.stat().st_size
        return total

    def copying() -> bool:
        found = src.http.get(f"/backups/{bid}").json()["backup"]
        assert found["status"] in ("NEW", "BUILDING"), found
        return found["status"] == "BUILDING" and copied() > 16 * 2**20

    wait_until(f"backup {bid} copying", copying, timeout=60, every=0.05)


def pids_with(*parts: bytes) -> list[int]:
    """The processes whose command line holds every one of `parts` (as whole arguments)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if all(part in argv for part in parts):
            found.append(int(proc.name))
    return found


def kill(pids: list[int]) -> None:
    assert pids
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextmanager
def replaced_stanza_dir(src: Source, **mount: str) -> Iterator[Path]:
    """The stanza's backup directory on a tmpfs (`mount`: its options) with the same
    contents and owner; on leaving, what the tmpfs holds then is copied back over the
    original (as if that filesystem had been given room again) and it is unmounted."""
    directory = src.stanza_dir
    stat = directory.stat()
    options = ",".join(f"{k}={v}" for k, v in mount.items())
    with tempfile.TemporaryDirectory() as saved:
        subprocess.run(["cp", "-a", f"{directory}/.", saved], check=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "cellar-test", str(directory)],
                       check=True)  # fmt: skip
        try:
            os.chown(directory, stat.st_uid, stat.st_gid)
            directory.chmod(stat.st_mode & 0o7777)
            subprocess.run(["cp", "-a", f"{saved}/.", str(directory)], check=True)
            yield directory
        finally:
            shutil.rmtree(saved)
            os.mkdir(saved)
            subprocess.run(["cp", "-a", f"{directory}/.", saved], check=True)
            subprocess.run(["umount", str(directory)], check=True)
            subprocess.run(["cp", "-a", f"{saved}/.", str(directory)], check=True)


def test_a_full_repository_fails_the_backup_and_the_next_one_completes(src: Source) -> None:
    http = src.http
    with replaced_stanza_dir(src, size="4m", mode="0750"):
        bid = backup(http, src.iid, "no-room")["id"]
        found = failed(http, bid)
        assert "No space left on device" in found["fail_reason"], found
        active_again(src)
        # Nothing half-made shows as a backup: neither to the user nor to pgBackRest.
        assert listed(src) == {bid: "FAILED"}
        assert src.valid_labels() == []
        # The instance takes actions again.
        r = http.post(f"/instances/{src.iid}/action", json={"restart": {}})
        assert r.status_code == 202, r.text
        wait_until("the restart to end", lambda: show(http, src.iid)["status"] != "REBOOT",
                   timeout=60)  # fmt: skip
        wait_active(http, src.iid)
    # Room again (what the failure left is back on the original filesystem): it completes.
    done = completed(http, backup(http, src.iid, "room-again")["id"])
    assert done["size"] and done["locationRef"]
    active_again(src)
    assert listed(src) == {bid: "FAILED", done["id"]: "COMPLETED"}
    assert src.valid_labels() == [done["locationRef"].split("/")[-1]]


def test_an_unwritable_repository_fails_the_backup_and_the_next_one_completes(
    src: Source,
) -> None:
    http = src.http
    directory = src.stanza_dir
    mode = directory.stat().st_mode & 0o7777
    before = src.valid_labels()
    directory.chmod(0o500)
    try:
        bid = backup(http, src.iid, "read-only", incremental=1)["id"]
        found = failed(http, bid)
        assert "Permission denied" in found["fail_reason"], found
        active_again(src)
        assert listed(src)[bid] == "FAILED"
        assert src.valid_labels() == before
    finally:
        directory.chmod(mode)
    done = completed(http, backup(http, src.iid, "writable", incremental=1)["id"])
    active_again(src)
    assert src.valid_labels() == [*before, done["locationRef"].split("/")[-1]]


def test_the_guests_backup_server_killed_mid_backup_fails_it_and_the_next_one_completes(
    src: Source,
) -> None:
    http = src.http
    conf = src.data_dir / "pgbackrest" / "pgbackrest.conf"
    server = (f"--config={conf}".encode(), b"server")
    before = src.valid_labels()
    bid = backup(http, src.iid, "interrupted")["id"]
    running_backup(src, bid)
    kill(pids_with(*server))
    found = failed(http, bid)
    assert "pgBackRest server broke" in found["fail_reason"], found
    active_again(src)
    assert listed(src)[bid] == "FAILED"
    assert src.valid_labels() == before
    # The guest keeps its backup server running: the next backup completes.
    wait_until("the guest's backup server again", lambda: bool(pids_with(*server)), timeout=30)
    done = completed(http, backup(http, src.iid, "after-the-kill")["id"])
    active_again(src)
    assert src.valid_labels() == [*before, done["locationRef"].split("/")[-1]]


def test_the_guest_agent_killed_mid_backup_does_not_hang_it(src: Source) -> None:
    """The backup does not go through the agent: it ends (here it completes). The local
    cloud starts the dead agent again, as a server's init would: the instance is ACTIVE
    and its agent takes commands."""
    http = src.http
    agent = (b"--config-drive", str(src.data_dir.parent / "config").encode())
    [killed] = pids_with(*agent)
    bid = backup(http, src.iid, "agent-killed")["id"]
    running_backup(src, bid)
    kill([killed])
    found = settled(http, bid)
    assert found["status"] == "COMPLETED" or found["fail_reason"], found
    wait_until("the agent started again", lambda: pids_with(*agent) not in ([], [killed]),
               timeout=30)  # fmt: skip
    active_again(src)
    r = http.post(f"/instances/{src.iid}/root")  # a command the agent itself runs
    assert r.status_code == 200, r.text
    with connect(src.address) as conn:
        assert conn.execute("SELECT count(*) FROM big").fetchone() == (BIG_ROWS,)


def test_a_backup_under_writes_restores_a_gap_free_prefix(src: Source) -> None:
    http = src.http
    with connect(src.address) as conn:
        conn.execute("CREATE TABLE ticks (n int PRIMARY KEY, at timestamptz)")
    committed = 0  # rows whose commit returned
    issued = 0  # rows whose INSERT was sent
    errors: list[BaseException] = []
    stop = threading.Event()

    def write() -> None:
        nonlocal committed, issued
        try:
            with connect(src.address) as conn:
                while not stop.is_set():
                    issued += 1
                    conn.execute("INSERT INTO ticks VALUES (%s, clock_timestamp())", (issued,))
                    committed = issued
        except BaseException as exc:
            errors.append(exc)

    writer = threading.Thread(target=write, name="writer")
    writer.start()
    try:
        wait_until("the first rows", lambda: committed >= 10, timeout=30)
        before = committed
        bid = backup(http, src.iid, "under-writes")["id"]
        done = completed(http, bid)
        after = issued
        wait_until("more rows after the backup", lambda: committed > after + 10, timeout=30)
    finally:
        stop.set()
        writer.join()
    assert not errors, errors
    active_again(src)

    restored = create(http, "restored", restorePoint={"backupRef": done["id"]},
                      volume={"size": 2}, **FRESH)  # fmt: skip
    try:
        address = wait_active(http, restored)["ip"][0]
        with connect(address) as conn:
            row = conn.execute("SELECT count(*), coalesce(max(n), 0), min(n) FROM ticks").fetchone()
            assert row is not None
            count, top, bottom = row
            big = conn.execute("SELECT count(*) FROM big").fetchone()
        assert bottom == 1 and count == top, (count, top, bottom)  # no hole
        assert before <= top <= after, (before, top, after)
        assert big == (BIG_ROWS,)
        print(f"restored rows 1..{top}; committed before the backup {before}, "
              f"issued before its end {after}")  # fmt: skip
    finally:
        delete_all(src.served, [restored])
