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

from sqlalchemy import Connection, Engine, Table, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from taskflow import exceptions as tf_exc
from taskflow.persistence import path_based

from cellar.db.models import TaskflowPath

_T: Table = TaskflowPath.__table__  # type: ignore[assignment]


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
    backend: SqlPathBackend

    def __init__(self, backend: SqlPathBackend) -> None:
        super().__init__(backend)
        self.backend = backend
        dialect = backend.engine.dialect.name
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert

    def _join_path(self, *parts: str) -> str:
        return posixpath.join(*parts)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Connection]:
        """The open transaction of this thread if any, else a short one of its own."""
        current: Connection | None = getattr(self.backend.local, "conn", None)
        if current is not None:
            yield current
            return
        with self.backend.engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection]:
        with self.backend.engine.begin() as conn:
            self.backend.local.conn = conn
            try:
                yield conn
            finally:
                self.backend.local.conn = None

    def _get_item(self, path: str) -> Any:
        with self._connection() as conn:
            value = conn.execute(select(_T.c.value).where(_T.c.path == path)).scalar_one_or_none()
        if value is None:
            raise tf_exc.NotFound(f"Item not found: {path}")
        return json.loads(value)

    def _set_item(self, path: str, value: Any, transaction: Connection) -> None:
        data = json.dumps(value)
        stmt = self._insert(_T).values(path=path, parent=posixpath.dirname(path), value=data)
        transaction.execute(
            stmt.on_conflict_do_update(index_elements=[_T.c.path], set_={"value": data})
        )

    def _del_tree(self, path: str, transaction: Connection) -> None:
        transaction.execute(
            delete(_T).where(or_(_T.c.path == path, _T.c.path.startswith(path + "/")))
        )

    def _get_children(self, path: str) -> list[str]:
        with self._connection() as conn:
            rows = conn.execute(select(_T.c.path).where(_T.c.parent == path)).scalars()
            return [posixpath.basename(p) for p in rows]

    def _ensure_path(self, path: str) -> None:
        """Paths need no folders here."""

    def _create_link(self, src_path: str, dest_path: str, transaction: Connection) -> None:
        stmt = self._insert(_T).values(
            path=dest_path, parent=posixpath.dirname(dest_path), link=src_path
        )
        transaction.execute(stmt.on_conflict_do_nothing(index_elements=[_T.c.path]))

    def validate(self) -> None:
        with self.backend.engine.connect() as conn:
            conn.execute(select(_T.c.path).limit(1))

    def clear_all(self) -> None:
        with self._transaction() as conn:
            conn.execute(delete(_T))
