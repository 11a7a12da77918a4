"""Engines and sessions. Built from settings on demand, never at import time."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and immediate transactions.

    Bound parameters (passwords, tokens' hashes, job arguments) never appear in an
    error's message or a log: `hide_parameters`.

    Every SQLite transaction starts with BEGIN IMMEDIATE: two writers then queue on the
    busy timeout instead of one failing with "database is locked" when it upgrades a
    read lock (pysqlite's deferred BEGIN allows that deadlock).
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            hide_parameters=True,
            **kwargs,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            readonly = conn.get_execution_options().get(READONLY, False)
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        _WRITE_LOCKS[engine] = threading.RLock()
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return create_engine(url, pool_pre_ping=True, hide_parameters=True, **kwargs)


def displayed_url(url: str) -> str:
    """`url` as it may be printed or logged: its password masked (`***`)."""
    return make_url(url).render_as_string(hide_password=True)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


# SQLite lets one writer in at a time and makes the others wait in its busy handler,
# which sleeps in growing steps (up to 100 ms). Writers of one process queue on a lock
# instead, and only processes meet in the busy handler.
_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
READONLY = "cellar_readonly"


@contextmanager
def write_lock(engine: Engine) -> Iterator[None]:
    """Held around one write transaction (a no-op but on SQLite)."""
    lock = _WRITE_LOCKS.get(engine)
    if lock is None:
        yield
        return
    with lock:
        yield


@contextmanager
def transaction(factory: sessionmaker[Session], *, readonly: bool = False) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on error.

    `readonly` transactions start deferred on SQLite: they neither wait for nor block
    writers (WAL), so reads never queue behind the task manager's writes.
    """
    if readonly:
        with factory() as session, session.begin():
            session.connection(execution_options={READONLY: True})
            yield session
        return
    engine = factory.kw["bind"]
    with write_lock(engine), factory() as session, session.begin():
        yield session
