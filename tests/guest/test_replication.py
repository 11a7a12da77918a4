"""Streaming replication between two real PostgreSQL 15 servers on loopback: a replica
copied from its primary, its status and lag, promotion, a switchover without loss, a
diverged former primary rewound, slots dropped."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from cellar.config import Settings
from cellar.domain.replication import REPLICATION_USER, ReplicationSpec, Role, slot_name
from cellar.domain.specs import InstanceSpec
from cellar.domain.status import ServiceStatus
from cellar.drivers.guest.base import GuestError
from cellar.drivers.local.guest import LocalGuestDriver
from cellar.guest.manager import GuestConflict, parse_prepare
from cellar.guest.pgfiles import replication_settings
from cellar.guest.postgresql import PostgreSQL
from cellar.localcloud.state import CloudState, Resource
from guest.helpers import (
    PG_VERSION,
    api_server,
    free_port,
    instance_spec,
    needs_real_postgres,
    new_instance,
    stop_cluster,
    wait_until,
)
from guest.test_agent import Agent
from guest.test_postgresql import connect, request

PASSWORD = "replication-secret-1"
APP = ("app", "app-secret-1", "appdb")


def test_max_slot_wal_keep_size_is_a_quarter_of_the_volume() -> None:
    assert replication_settings(8 << 30)["max_slot_wal_keep_size"] == "2048MB"
    assert replication_settings(100 << 20)["max_slot_wal_keep_size"] == "64MB"
    assert replication_settings(8 << 30)["wal_keep_size"] == "512MB"
    assert replication_settings(100 << 20)["wal_keep_size"] == "16MB"


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
def scratch() -> Iterator[Path]:
    """Where the servers' data directories go (a, b, c), all stopped at the end."""
    base = Path(tempfile.mkdtemp(prefix="cr-", dir="/tmp"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        for name in ("a", "b", "c"):
            stop_cluster(base / name / "pgdata")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def data_dirs(scratch: Path) -> tuple[Path, Path]:
    return scratch / "a", scratch / "b"


def app(port: int, host: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host=host, port=port, user=APP[0], password=APP[1], dbname=APP[2],
        connect_timeout=5, autocommit=True,
    )  # fmt: skip


def rows(port: int, host: str = "127.0.0.1") -> list[tuple[object, ...]]:
    with app(port, host) as conn:
        return conn.execute("SELECT id FROM notes ORDER BY id").fetchall()


def insert(port: int, *ids: int, host: str = "127.0.0.1") -> None:
    with app(port, host) as conn:
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
    timed("follow of a running standby", timings, lambda: b.follow(standby_of(a, "b")))
    assert in_recovery(b_port)

    # A former primary that no longer has the WAL a rewind needs is copied afresh.
    b.promote()
    insert(b_port, 300)
    insert(a_port, 102)
    a.stop()
    for segment in (a.pgdata / "pg_wal").glob("0000*"):
        segment.unlink()
    timed("follow with a new copy", timings, lambda: a.follow(standby_of(b, "a")))
    assert in_recovery(a_port)
    after = [*expected, (100,), (101,), (300,)]
    wait_until(lambda: rows(a_port), lambda r: r == after, "b's rows on a, copied")
    with a.connect() as conn:
        assert conn.execute("SHOW port").fetchone() == (str(a_port),)
    # Dropping a slot in use ends its walsender; dropping it again is nothing.
    a_slot_on_b = slot_name("a")
    b.drop_slot(a_slot_on_b)
    b.drop_slot(a_slot_on_b)
    assert all(r.slot != a_slot_on_b for r in b.replication_status().replicas)
    print("timings (s):", timings)


@needs_real_postgres
def test_a_running_standby_follows_the_promoted_one(scratch: Path) -> None:
    """A primary and two replicas; the primary stops, b is promoted, c (running) is
    re-pointed at b without a restart and follows b's new timeline."""
    a, b, c = (
        PostgreSQL(scratch / n, address="127.0.0.1", version=PG_VERSION, port=free_port())
        for n in "abc"
    )
    a.prepare(request(a.port, replication=ReplicationSpec(Role.PRIMARY, PASSWORD)))
    with connect(a.port, *APP) as conn:
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY)")
    b.prepare(request(b.port, replication=standby_of(a, "b")))
    c.prepare(request(c.port, replication=standby_of(a, "c")))
    insert(a.port, 1)
    a.stop()
    stopped = a.stopped_lsn()
    for standby in (b, c):
        wait_until(standby.replication_status, lambda st: st.lsn >= stopped, "replay")
    b.promote()
    c_pid = (c.pgdata / "postmaster.pid").read_text().split()[0]
    started = time.monotonic()
    c.follow(standby_of(b, "c"))
    print(f"a running standby re-pointed in {time.monotonic() - started:.2f} s")
    assert (c.pgdata / "postmaster.pid").read_text().split()[0] == c_pid  # no restart
    insert(b.port, 2)
    wait_until(lambda: rows(c.port), lambda r: r == [(1,), (2,)], "b's row on c")
    assert c.replication_status().timeline == 2
    [lag] = b.replication_status().replicas
    assert lag.slot == slot_name("c") and lag.active


# Through the agents' HTTP API, driven by the local guest driver.


@dataclass
class Member:
    instance_id: str
    server_id: str
    address: str
    pg_port: int
    agent: Agent

    def spec(self, ram_mb: int) -> InstanceSpec:
        return instance_spec(self.instance_id, self.pg_port, APP[1], ram_mb=ram_mb)


@pytest.fixture
def members(
    settings: Settings, engine: Engine, sessions: sessionmaker[Session], tmp_path: Path,
    data_dirs: tuple[Path, Path],
) -> Iterator[tuple[LocalGuestDriver, Member, Member]]:  # fmt: skip
    """Two servers, at 127.0.0.1 and 127.0.0.2, each with its config drive and agent,
    reporting to the API."""
    state = CloudState(settings.local_root / "state.sqlite")
    agent_port = free_port()
    driver = LocalGuestDriver(settings, agent_port=agent_port, boot_wait_s=20)
    found: list[Member] = []
    with api_server(settings, engine) as api:
        for address, data_dir in zip(("127.0.0.1", "127.0.0.2"), data_dirs, strict=True):
            instance_id, server_id = new_instance(sessions), str(uuid.uuid4())
            state.put(
                Resource(server_id, "server", f"cellar-{instance_id}", None, {"address": address})
            )  # fmt: skip
            drive = tmp_path / f"drive-{data_dir.name}"
            drive.mkdir()
            user_data = {**driver.user_data(instance_id), "control_plane_url": api}
            (drive / "user_data.json").write_text(json.dumps(user_data))
            meta = {"server_id": server_id, "address": address, "data_dir": str(data_dir)}
            (drive / "meta_data.json").write_text(json.dumps(meta))
            agent = Agent(drive, agent_port, tmp_path / f"agent-{data_dir.name}.log")
            agent.start()
            found.append(Member(instance_id, server_id, address, free_port(), agent))
        try:
            yield driver, found[0], found[1]
        finally:
            for member in found:
                member.agent.kill()
                text = member.agent.log.read_text() if member.agent.log.exists() else ""
                password = driver.replication_password("group-1")
                assert password not in text and APP[1] not in text


@needs_real_postgres
def test_the_local_guest_driver_replicates_through_the_agents(
    members: tuple[LocalGuestDriver, Member, Member],
) -> None:
    driver, a, b = members
    password = driver.replication_password("group-1")
    assert password == driver.replication_password("group-1") != driver.replication_password("g2")
    primary = ReplicationSpec(Role.PRIMARY, password)
    replica = ReplicationSpec(
        Role.REPLICA, password, a.address, a.pg_port, slot_name(b.instance_id)
    )

    def running(member: Member) -> None:
        wait_until(
            lambda: driver.status(member.instance_id).service,
            lambda s: s is ServiceStatus.RUNNING, "RUNNING", timeout_s=60,
        )  # fmt: skip

    driver.prepare(a.instance_id, server_id=a.server_id, spec=a.spec(256), replication=primary)
    running(a)
    with connect(a.pg_port, *APP) as conn:
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY)")
    insert(a.pg_port, 1)
    started = time.monotonic()
    driver.prepare(b.instance_id, server_id=b.server_id, spec=b.spec(128), replication=replica)
    running(b)
    print(f"replica prepared through the agent in {time.monotonic() - started:.2f} s")
    wait_until(lambda: rows(b.pg_port, b.address), lambda r: r == [(1,)], "the row on b")
    assert driver.root_password(b.instance_id) is None  # the primary's is its own

    status = driver.replication_status(a.instance_id)
    assert status.role is Role.PRIMARY
    assert [(r.slot, r.active) for r in status.replicas] == [(replica.slot, True)]
    assert status.replicas[0].lag_bytes is not None
    assert driver.replication_status(b.instance_id).role is Role.REPLICA
    with pytest.raises(GuestError, match=r"409.*primary already"):
        driver.promote(a.instance_id)
    with pytest.raises(GuestError, match=r"409.*running"):
        driver.stopped_lsn(a.instance_id)

    # A switchover through the driver.
    insert(a.pg_port, 2)
    driver.stop_db(a.instance_id)
    stopped = driver.stopped_lsn(a.instance_id)
    wait_until(
        lambda: driver.replication_status(b.instance_id).lsn, lambda n: n >= stopped,
        "replay up to the stopped primary's position",
    )  # fmt: skip
    driver.promote(b.instance_id)
    back = ReplicationSpec(Role.REPLICA, password, b.address, b.pg_port, slot_name(a.instance_id))
    driver.follow(a.instance_id, back)
    insert(b.pg_port, 3, host=b.address)
    wait_until(lambda: rows(a.pg_port), lambda r: r == [(1,), (2,), (3,)], "rows on a")
    # An agent restart keeps the roles: the datastore says what it is.
    a.agent.kill()
    a.agent.start()
    wait_until(
        lambda: driver.replication_status(a.instance_id).role, lambda r: r is Role.REPLICA,
        "a replica after the agent's restart",
    )  # fmt: skip
    with pytest.raises(GuestError, match=r"400.*slot"):
        driver._command(b.instance_id, "/replication/slots/drop", {"slot": "Bad"})
    driver.drop_replication_slot(b.instance_id, slot_name(a.instance_id))
    assert driver.replication_status(b.instance_id).replicas == ()


@needs_real_postgres
def test_a_primary_prepared_alone_becomes_a_source_for_its_first_replica(
    data_dirs: tuple[Path, Path],
) -> None:
    """Trove's `replica_of` on an instance made without replicas: it had no replication
    role; `make_source` makes one (a repeat only sets the password), then a replica
    copies it; a replica is no source."""
    a_port, b_port = free_port(), free_port()
    a = PostgreSQL(data_dirs[0], address="127.0.0.1", version=PG_VERSION, port=a_port)
    b = PostgreSQL(data_dirs[1], address="127.0.0.1", version=PG_VERSION, port=b_port)
    a.prepare(request(a_port))
    with a.connect() as conn:
        found = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (REPLICATION_USER,))
        assert found.fetchone() is None
    with connect(a_port, *APP) as conn:
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY)")
    insert(a_port, 1)
    a.make_source(PASSWORD)
    a.make_source(PASSWORD)
    b.prepare(request(b_port, replication=standby_of(a, "b")))
    insert(a_port, 2)
    wait_until(lambda: rows(b_port), lambda r: r == [(1,), (2,)], "rows on the replica")
    with pytest.raises(GuestConflict):
        b.make_source(PASSWORD)
