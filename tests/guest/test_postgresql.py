"""The PostgreSQL manager on a scratch data directory, listening on loopback."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psycopg
import pytest

from cellar.domain.status import ServiceStatus
from cellar.guest.manager import Database, GuestCommandError, PrepareRequest, User
from cellar.guest.pgfiles import alive, memory_settings, postmaster_pid, socket_dir_for
from cellar.guest.postgresql import PostgreSQL
from guest.helpers import PG_VERSION, free_port, needs_real_postgres

RUNNING, SHUTDOWN, CRASHED = ServiceStatus.RUNNING, ServiceStatus.SHUTDOWN, ServiceStatus.CRASHED


def request(port: int, **changes: object) -> PrepareRequest:
    values: dict[str, object] = {
        "datastore": "postgresql",
        "version": PG_VERSION,
        "ram_mb": 256,
        "port": port,
        "databases": (Database("appdb"),),
        "users": (User("app", "app-secret-1", ("appdb",)),),
    }
    values.update(changes)
    return PrepareRequest(**values)  # type: ignore[arg-type]


def manager(data_dir: Path, port: int) -> PostgreSQL:
    return PostgreSQL(data_dir, address="127.0.0.1", version=PG_VERSION, port=port)


def connect(
    port: int, user: str, password: str, dbname: str
) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host="127.0.0.1", port=port, user=user, password=password, dbname=dbname,
        connect_timeout=5, autocommit=True,
    )  # fmt: skip


def test_memory_follows_the_flavor() -> None:
    assert memory_settings(2048) == {
        "shared_buffers": "512MB",
        "effective_cache_size": "1536MB",
        "max_connections": "100",
    }
    assert memory_settings(256)["max_connections"] == "25"


def test_a_long_data_directory_gets_a_short_socket_directory() -> None:
    assert socket_dir_for(Path("/srv/v1"), 5432) == Path("/srv/v1/run")
    long_dir = Path("/x" * 60)
    short = socket_dir_for(long_dir, 5432)
    assert short.parent == Path("/tmp") and short == socket_dir_for(long_dir, 5432)


def test_a_version_not_installed_fails_the_prepare(tmp_path: Path) -> None:
    pg = PostgreSQL(tmp_path, address="127.0.0.1", version="7", port=free_port())
    with pytest.raises(GuestCommandError, match="PostgreSQL 7 is not installed"):
        pg.prepare(request(free_port(), version="7"))


@needs_real_postgres
def test_prepare_makes_a_running_datastore_with_its_users(data_dir: Path) -> None:
    port = free_port()
    pg = manager(data_dir, port)
    root_password = pg.prepare(request(port))
    assert pg.status() is RUNNING and root_password is not None
    assert (data_dir / "pgdata").stat().st_uid == (data_dir).stat().st_uid != 0

    with connect(port, "app", "app-secret-1", "appdb") as conn:
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        conn.execute("INSERT INTO notes VALUES (1, 'one'), (2, 'two')")
        assert conn.execute("SELECT body FROM notes ORDER BY id").fetchall() == [("one",), ("two",)]
        assert conn.execute("SHOW shared_buffers").fetchone() == ("64MB",)
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
    with connect(port, "postgres", root_password, "postgres") as conn:
        assert conn.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone() == (True,)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(port, "app", "wrong", "appdb")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(port, "postgres", "wrong", "postgres")


@needs_real_postgres
def test_a_failed_statement_keeps_the_password_out_of_the_log(data_dir: Path) -> None:
    port = free_port()
    pg = manager(data_dir, port)
    users = (User("twice", "first-pw-0x51"), User("twice", "second-pw-0x52"))
    with pytest.raises(GuestCommandError, match='role "twice" already exists') as failure:
        pg.prepare(request(port, databases=(), users=users))
    assert "second-pw-0x52" not in str(failure.value)
    log = (data_dir / "postgresql.log").read_text()
    assert 'role "twice" already exists' in log
    assert "pw-0x5" not in log


@needs_real_postgres
def test_stop_start_crash_and_restart(data_dir: Path) -> None:
    port = free_port()
    pg = manager(data_dir, port)
    pg.prepare(request(port))
    with connect(port, "app", "app-secret-1", "appdb") as conn:
        conn.execute("CREATE TABLE kept (x int)")
        conn.execute("INSERT INTO kept VALUES (42)")

    pg.stop()
    assert pg.status() is SHUTDOWN
    with pytest.raises(psycopg.OperationalError):
        connect(port, "app", "app-secret-1", "appdb")
    pg.stop()  # stopping a stopped datastore is a no-op
    assert pg.status() is SHUTDOWN

    pg.start()
    assert pg.status() is RUNNING
    with connect(port, "app", "app-secret-1", "appdb") as conn:
        assert conn.execute("SELECT x FROM kept").fetchall() == [(42,)]

    pid = postmaster_pid(data_dir / "pgdata")
    assert pid is not None and alive(pid)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pg.status() is not CRASHED:
        assert time.monotonic() < deadline, f"still {pg.status()} after the postmaster died"
        time.sleep(0.05)

    pg.restart()  # from CRASHED: crash recovery, then running again with the data
    assert pg.status() is RUNNING
    with connect(port, "app", "app-secret-1", "appdb") as conn:
        assert conn.execute("SELECT x FROM kept").fetchall() == [(42,)]

    os.kill(postmaster_pid(data_dir / "pgdata") or 0, signal.SIGKILL)
    pg.stop()  # a stop of a crashed datastore: it is down on purpose now
    assert pg.status() is SHUTDOWN


@needs_real_postgres
def test_a_data_directory_the_postgres_account_cannot_reach_is_refused(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    pg = manager(closed / "data", free_port())
    with pytest.raises(GuestCommandError, match="postgres account cannot reach"):
        pg.prepare(request(pg.port))
