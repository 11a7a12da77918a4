"""Backups with real pgBackRest 2.45 and PostgreSQL 15 on loopback: the cloud's repository
(its TLS server, certificates, stanzas), a guest archiving from its first start and
serving its data directory to the repository host, full and incremental backups checked
(page checksums as taken), the window, point-in-time restores into new data directories
(also after the source is gone), another project's certificate refused, a set deleted."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from cellar.config import Settings
from cellar.domain.backups import BackupState, BackupType, RestoreTarget
from cellar.guest.pgfiles import socket_dir_for
from cellar.guest.postgresql import PostgreSQL
from cellar.localcloud.backups import BackupRepository
from cellar.localcloud.state import CloudState
from guest.helpers import PG_VERSION, free_port, needs_real_postgres, stop_cluster, wait_until
from guest.test_postgresql import connect, request

APP = ("app", "app-secret-1", "appdb")
pytestmark = [
    needs_real_postgres,
    pytest.mark.skipif(shutil.which("pgbackrest") is None, reason="pgbackrest is not installed"),
]


@pytest.fixture
def scratch() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="cb-", dir="/tmp"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        for child in base.iterdir():
            if (child / "pgdata").exists():
                stop_cluster(child / "pgdata")
                PostgreSQL(
                    child, address="127.0.0.1", version=PG_VERSION, port=1
                ).backrest.stop_server()
        BackupRepository(Settings(state_dir=base / "state"), address="127.0.0.1").stop()
        shutil.rmtree(base, ignore_errors=True)


def server(base: Path, name: str) -> PostgreSQL:
    return PostgreSQL(base / name, address="127.0.0.1", version=PG_VERSION, port=free_port())


def prepare(repo: BackupRepository, pg: PostgreSQL, project: str, instance: str,
            restore: RestoreTarget | None = None) -> None:  # fmt: skip
    access = repo.access(
        project, instance, address="127.0.0.1", data_dir=pg.data_dir, port=pg.port,
        socket_dir=socket_dir_for(pg.data_dir, pg.port), guest_port=free_port(),
    )  # fmt: skip
    pg.prepare(request(pg.port, repository=access, restore=restore))


def ids(pg: PostgreSQL) -> list[int]:
    with connect(pg.port, *APP) as conn:
        return [int(str(r[0])) for r in conn.execute("SELECT id FROM notes ORDER BY id")]


def insert(pg: PostgreSQL, i: int) -> datetime:
    with connect(pg.port, *APP) as conn:
        row = conn.execute(
            "INSERT INTO notes VALUES (%s) RETURNING clock_timestamp()", (i,)
        ).fetchone()
    assert row is not None and isinstance(row[0], datetime)
    return row[0]


def backup(repo: BackupRepository, stanza: str, backup_id: str, *, incremental: bool) -> None:
    repo.start_backup(stanza, backup_id, incremental=incremental)
    repo.start_backup(stanza, backup_id, incremental=incremental)  # idempotent
    progress = wait_until(
        lambda: repo.backup_progress(stanza, backup_id),
        lambda p: p.state is not BackupState.RUNNING,
        f"backup {backup_id}",
        timeout_s=120,
    )
    assert progress.state is BackupState.COMPLETED, progress.error


def test_backup_and_point_in_time_restore(scratch: Path) -> None:
    settings = Settings(state_dir=scratch / "state")
    (scratch / "state").mkdir()
    (scratch / "state").chmod(0o755)
    repo = BackupRepository(
        settings, CloudState(scratch / "state" / "cloud.sqlite"), address="127.0.0.1",
        port=free_port(),
    )  # fmt: skip
    source = server(scratch, "a")
    prepare(repo, source, "p1", "src")
    stanza = "cellar-src"
    repo.create_stanza(stanza)
    with connect(source.port, *APP) as conn:
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY)")
    insert(source, 1)
    backup(repo, stanza, "b-full", incremental=False)
    # The commits to restore between come once the window is open: from the second
    # after the one the full set ended in.
    opens = repo.backup_sets(stanza)[0].stopped_at + timedelta(seconds=1)
    wait_until(lambda: datetime.now(UTC), lambda now: now >= opens, "the window to open", 5)
    times = {i: insert(source, i) for i in range(2, 7)}
    backup(repo, stanza, "b-incr", incremental=True)
    sets = repo.backup_sets(stanza)
    assert [s.type for s in sets] == [BackupType.FULL, BackupType.INCREMENTAL]
    assert [s.backup_id for s in sets] == ["b-full", "b-incr"]
    assert sets[1].parent_label == sets[0].label and sets[0].database_size_bytes > 0
    later = insert(source, 7)
    with source.connect() as conn:
        conn.execute("SELECT pg_switch_wal()")
    window = wait_until(
        lambda: repo.window(stanza),
        lambda w: w is not None and w.restorable_until >= later,
        "the window to reach the last commit",
        timeout_s=60,
    )
    # From the second after the one the oldest set ended in.
    assert window is not None
    assert window.restorable_from == sets[0].stopped_at + timedelta(seconds=1)

    # An instant between two commits: exactly the rows committed before it.
    instant = times[4] + (times[5] - times[4]) / 2
    started = time.monotonic()
    restored = server(scratch, "b")
    prepare(repo, restored, "p1", "pitr", RestoreTarget(stanza, target_time=instant))
    restore_s = time.monotonic() - started
    assert ids(restored) == [1, 2, 3, 4], restore_s
    insert(restored, 100)  # it takes writes, on its own timeline

    # The end of the full set: the row committed before it only.
    at_full = server(scratch, "c")
    prepare(repo, at_full, "p1", "full", RestoreTarget(stanza, label=sets[0].label))
    assert ids(at_full) == [1]

    # The source is gone: its stanza still restores, to the end of the archive.
    source.discard()
    shutil.rmtree(source.data_dir)
    last = server(scratch, "d")
    prepare(repo, last, "p1", "after", RestoreTarget(stanza))
    assert ids(last) == [1, 2, 3, 4, 5, 6, 7]

    # Another project's certificate is refused for this stanza by the repository.
    other = server(scratch, "e")
    prepare(repo, other, "p2", "other")
    done = subprocess.run(
        ["runuser", "-u", "postgres", "--", "pgbackrest",
         f"--config={other.backrest.conf}", f"--stanza={stanza}", "info"],
        capture_output=True, text=True, check=False, cwd="/",
    )  # fmt: skip
    assert "access denied" in done.stdout + done.stderr

    # A full set with an incremental on it stays; the incremental goes.
    assert repo.delete_set(stanza, sets[0].label) == (sets[1].label,)
    assert repo.delete_set(stanza, sets[1].label) == ()
    assert [s.label for s in repo.backup_sets(stanza)] == [sets[0].label]
    print(f"restore to an instant: {restore_s:.2f} s")


def test_a_failed_backup_is_failed_with_its_reason(scratch: Path) -> None:
    settings = Settings(state_dir=scratch / "state")
    repo = BackupRepository(settings, address="127.0.0.1", port=free_port())
    source = server(scratch, "a")
    prepare(repo, source, "p1", "down")
    repo.create_stanza("cellar-down")
    source.stop()
    repo.start_backup("cellar-down", "b1", incremental=False)
    progress = wait_until(
        lambda: repo.backup_progress("cellar-down", "b1"),
        lambda p: p.state is not BackupState.RUNNING,
        "the backup to end",
        timeout_s=60,
    )
    assert progress.state is BackupState.FAILED and progress.error
    with pytest.raises(psycopg.OperationalError):
        connect(source.port, *APP)
