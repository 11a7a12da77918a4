"""TaskFlow's logbook kept in the control plane's own database.

TaskFlow ships an SQLAlchemy backend, but measured here it costs about 300 ms per
eight-task flow on SQLite (it compiles every statement afresh and commits each atom
change with an fsync), which alone would cap the task manager near three creates a
second. TaskFlow's own `PathBasedConnection` holds all of its (de)serialisation logic
and only needs a key-value store under it: this module is that store, one table
(`taskflow_paths`) in cellar's database, so the logbook is shared by every task manager
that shares the database (SQLite alone, or PostgreSQL when distributed).
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import threading
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine
from taskflow import exceptions as tf_exc
from taskflow.persistence import path_based

from cellar.db.engine import write_lock


class SqlPathBackend(path_based.PathBasedBackend):  # type: ignore[misc]
    """A TaskFlow persistence backend over the `taskflow_paths` table."""

    DEFAULT_PATH = "/taskflow"

    def __init__(self, engine: Engine) -> None:
        super().__init__({"path": self.DEFAULT_PATH})
        self.engine = engine
        self.local = threading.local()

    def get_connection(self) -> _Connection:
        return _Connection(self)

    def close(self) -> None:
        pass


class _Connection(path_based.PathBasedConnection):  # type: ignore[misc]
    """Plain SQL on the pool's DBAPI connections: TaskFlow writes several rows per step,
    and SQLAlchemy's statement building and execution context cost more than the SQL."""

    def __init__(self, backend: SqlPathBackend) -> None:
        super().__init__(backend)
        self.sql = backend
        self.sqlite = backend.engine.dialect.name == "sqlite"
        mark = "?" if self.sqlite else "%s"
        self.q_get = f"SELECT value FROM taskflow_paths WHERE path = {mark}"
        self.q_children = f"SELECT path FROM taskflow_paths WHERE parent = {mark}"
        self.q_set = (
            f"INSERT INTO taskflow_paths (path, parent, value) VALUES ({mark}, {mark}, {mark}) "
            "ON CONFLICT (path) DO UPDATE SET value = excluded.value"
        )
        self.q_link = (
            f"INSERT INTO taskflow_paths (path, parent, link) VALUES ({mark}, {mark}, {mark}) "
            "ON CONFLICT (path) DO NOTHING"
        )
        self.q_del = f"DELETE FROM taskflow_paths WHERE path = {mark} OR path LIKE {mark}"

    def _join_path(self, *parts: str) -> str:
        return posixpath.join(*parts)

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Any]:
        """The cursor of this thread's open transaction, else one for a single read."""
        current = getattr(self.sql.local, "cursor", None)
        if current is not None:
            yield current
            return
        raw = self.sql.engine.raw_connection()
        cursor = raw.cursor()
        try:
            yield cursor  # SQLite: autocommit read; PostgreSQL: rolled back below
        finally:
            cursor.close()
            if not self.sqlite:
                raw.rollback()
            raw.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        with write_lock(self.sql.engine):
            raw = self.sql.engine.raw_connection()
            cursor = raw.cursor()
            try:
                if self.sqlite:
                    cursor.execute("BEGIN IMMEDIATE")
                self.sql.local.cursor = cursor
                yield cursor
                if self.sqlite:
                    cursor.execute("COMMIT")
                else:
                    raw.commit()
            except BaseException:
                raw.rollback()
                raise
            finally:
                self.sql.local.cursor = None
                cursor.close()
                raw.close()

    def _get_item(self, path: str) -> Any:
        with self._cursor() as cur:
            cur.execute(self.q_get, (path,))
            row = cur.fetchone()
        if row is None or row[0] is None:
            raise tf_exc.NotFound(f"Item not found: {path}")
        return json.loads(row[0])

    def _set_item(self, path: str, value: Any, transaction: Any) -> None:
        transaction.execute(self.q_set, (path, posixpath.dirname(path), json.dumps(value)))

    def _del_tree(self, path: str, transaction: Any) -> None:
        transaction.execute(self.q_del, (path, path + "/%"))

    def _get_children(self, path: str) -> list[str]:
        with self._cursor() as cur:
            cur.execute(self.q_children, (path,))
            return [posixpath.basename(row[0]) for row in cur.fetchall()]

    def _ensure_path(self, path: str) -> None:
        """Paths need no folders here."""

    def _create_link(self, src_path: str, dest_path: str, transaction: Any) -> None:
        transaction.execute(self.q_link, (dest_path, posixpath.dirname(dest_path), src_path))

    def validate(self) -> None:
        with self._cursor() as cur:
            cur.execute("SELECT 1 FROM taskflow_paths LIMIT 1")

    def clear_all(self) -> None:
        with self._transaction() as cur:
            cur.execute("DELETE FROM taskflow_paths")
