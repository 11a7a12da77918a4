"""Streaming replication between two real PostgreSQL 15 servers on loopback: a replica
copied from its primary, its status and lag, promotion, a switchover without loss, a
diverged former primary rewound, slots dropped."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from cellar.domain.replication import REPLICATION_USER, ReplicationSpec, Role, slot_name
from cellar.domain.status import ServiceStatus
from cellar.guest.manager import GuestConflict, parse_prepare
from cellar.guest.pgfiles import replication_settings
from cellar.guest.postgresql import PostgreSQL
from guest.helpers import PG_VERSION, free_port, needs_real_postgres, stop_cluster, wait_until
from guest.test_postgresql import connect, request

PASSWORD = "replication-secret-1"
APP = ("app", "app-secret-1", "appdb")


def test_max_slot_wal_keep_size_is_a_quarter_of_the_volume() -> None:
    assert replication_settings(8 << 30)["max_slot_wal_keep_size"] == "2048MB"
    assert replication_settings(100 << 20)["max_slot_wal_keep_size"] == "64MB"


def test_the_prepare_body_takes_a_replication_object() -> None:
    base = {"datastore": "postgresql", "version": "15", "ram_mb": 256, "port": 5432}
    replica = {"role": "replica", "password": "pw", "primary_address": "10.0.0.5",
               "primary_port": 5433, "slot": "cellar_abc"}  # fmt: skip
    parsed = parse_prepare({**base, "replication": replica})
    assert parsed.replication == ReplicationSpec(Role.REPLICA, "pw", "10.0.0.5", 5433, "cellar_abc")
    assert parse_prepare({**base, "replication": {"role": "primary", "password": "pw"}})
    assert parse_prepare(base).replication is None
    for wrong, field in [
        ({"role": "leader", "password": "pw"}, "replication.role"),
        ({"role": "primary"}, "replication.password"),
        ({**replica, "slot": "Bad-Slot"}, "replication.slot"),
        ({**replica, "primary_address": "h; rm"}, "replication.primary_address"),
        ({**replica, "primary_port": 0}, "replication.primary_port"),
        ("replica", "replication"),
    ]:
        with pytest.raises(ValueError, match=field):
            parse_prepare({**base, "replication": wrong})


@pytest.fixture
def data_dirs() -> Iterator[tuple[Path, Path]]:
    base = Path(tempfile.mkdtemp(prefix="cr-", dir="/tmp"))
    base.chmod(0o755)
    try:
        yield base / "a", base / "b"
    finally:
        for name in ("a", "b"):
            stop_cluster(base / name / "pgdata")
        shutil.rmtree(base, ignore_errors=True)


def rows(port: int) -> list[tuple[object, ...]]:
    with connect(port, *APP) as conn:
        return conn.execute("SELECT id FROM notes ORDER BY id").fetchall()


def insert(port: int, *ids: int) -> None:
    with connect(port, *APP) as conn:
        for i in ids:
            conn.execute("INSERT INTO notes VALUES (%s)", (i,))


def in_recovery(port: int) -> bool:
    with connect(port, *APP) as conn:
        row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    return bool(row and row[0])


def standby_of(pg: PostgreSQL, iid: str) -> ReplicationSpec:
    return ReplicationSpec(Role.REPLICA, PASSWORD, "127.0.0.1", pg.port, slot_name(iid))


def timed(what: str, timings: dict[str, float], call: object) -> None:
    started = time.monotonic()
    assert callable(call)
    call()
    timings[what] = round(time.monotonic() - started, 2)


@needs_real_postgres
def test_a_replica_streams_is_promoted_and_the_old_primary_follows(
    data_dirs: tuple[Path, Path],
) -> None:
    timings: dict[str, float] = {}
    a_port, b_port = free_port(), free_port()
    a = PostgreSQL(data_dirs[0], address="127.0.0.1", version=PG_VERSION, port=a_port)
    b = PostgreSQL(data_dirs[1], address="127.0.0.1", version=PG_VERSION, port=b_port)
    primary_spec = ReplicationSpec(Role.PRIMARY, PASSWORD)
    timed("primary prepare", timings, lambda: a.prepare(request(a_port, replication=primary_spec)))
    with connect(a_port, *APP) as conn:
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY)")
    insert(a_port, 1, 2)

    # The replica: a copy through its slot, with its own port and memory, read-only.
    replica = request(b_port, ram_mb=128, replication=standby_of(a, "b"))
    timed("replica prepare", timings, lambda: b.prepare(replica))
    assert b.status() is ServiceStatus.RUNNING and in_recovery(b_port)
    insert(a_port, 3)
    wait_until(lambda: rows(b_port), lambda r: r == [(1,), (2,), (3,)], "rows on the replica")
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        insert(b_port, 4)
    with b.connect() as conn:
        assert conn.execute("SHOW port").fetchone() == (str(b_port),)
        assert conn.execute("SHOW shared_buffers").fetchone() == ("32MB",)
    with a.connect() as conn:
        assert conn.execute("SHOW shared_buffers").fetchone() == ("64MB",)
        role = conn.execute(
            "SELECT rolsuper, rolreplication, rolcanlogin FROM pg_roles WHERE rolname = %s",
            (REPLICATION_USER,),
        ).fetchone()
        assert role == (False, True, True)
        keep = conn.execute("SHOW max_slot_wal_keep_size").fetchone()
        assert keep is not None and keep[0] != "-1"
        sender = conn.execute("SELECT application_name FROM pg_stat_replication").fetchall()
        assert sender == [(slot_name("b"),)]

    status = a.replication_status()
    assert status.role is Role.PRIMARY and status.timeline == 1 and status.lsn > 0
    [lag] = status.replicas
    assert lag.slot == slot_name("b") and lag.active and lag.address == "127.0.0.1"
    assert lag.state == "streaming" and lag.lag_bytes is not None and lag.lag_bytes >= 0
    standby = b.replication_status()
    assert standby.role is Role.REPLICA and standby.receive_lsn is not None
    with pytest.raises(GuestConflict):
        a.promote()
    with pytest.raises(GuestConflict):
        a.stopped_lsn()

    # A restart keeps the replica a replica (standby.signal stays in its data directory).
    b.restart()
    assert in_recovery(b_port)

    # Switchover: nothing the old primary committed is lost.
    insert(a_port, *range(10, 60))
    a.stop()
    stopped = a.stopped_lsn()
    wait_until(lambda: b.replication_status().lsn, lambda lsn: lsn >= stopped, "replay")
    timed("promote", timings, b.promote)
    insert(b_port, 60)
    assert not in_recovery(b_port) and b.replication_status().timeline == 2
    timed("follow after a clean stop", timings, lambda: a.follow(standby_of(b, "a")))
    assert in_recovery(a_port)
    insert(b_port, 61)
    expected = [(i,) for i in (1, 2, 3, *range(10, 62))]
    wait_until(lambda: rows(a_port), lambda r: r == expected, "every row on the old primary")
    assert rows(b_port) == expected
    slots = {r.slot: r for r in b.replication_status().replicas}
    assert slots[slot_name("a")].active

    # Diverged: both become primaries and take writes; b follows a again, rewound.
    b_slots_on_a = slot_name("b")
    timed("promote", timings, a.promote)
    insert(a_port, 100)
    insert(b_port, 200)
    timed("follow with a rewind", timings, lambda: b.follow(standby_of(a, "b")))
    assert in_recovery(b_port)
    insert(a_port, 101)
    wait_until(lambda: rows(b_port), lambda r: r == [*expected, (100,), (101,)], "a's rows on b")
    with b.connect() as conn:  # its own settings, not a's
        assert conn.execute("SHOW port").fetchone() == (str(b_port),)

    # A running standby is re-pointed without a restart (here: at the same primary).
    b.follow(standby_of(a, "b"))
    assert in_recovery(b_port)

    # Slots: dropping one in use ends its walsender; dropping it again is nothing.
    a.drop_slot(b_slots_on_a)
    a.drop_slot(b_slots_on_a)
    assert all(r.slot != b_slots_on_a for r in a.replication_status().replicas)
    print("timings (s):", timings)
