"""The local cloud's own state: one SQLite file, apart from the control plane's database.

Rows are resources (`kind`, `id`, `name`, optional `parent`, JSON `data`) plus the address
pool. Every change is one `BEGIN IMMEDIATE` transaction, so several processes (the task
managers, `cellar audit`, the DNS server) can share the file.
"""

from __future__ import annotations

import ipaddress
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellar.localcloud.system import LocalCloudError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    parent TEXT,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS resources_by_name ON resources (kind, name);
CREATE INDEX IF NOT EXISTS resources_by_parent ON resources (parent, kind);
CREATE TABLE IF NOT EXISTS addresses (address TEXT PRIMARY KEY, owner TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Resource:
    id: str
    kind: str
    name: str
    parent: str | None
    data: dict[str, Any]


class CloudState:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self.tx() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.conn = conn
        return conn

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (nested calls join the outer one)."""
        conn = self._conn()
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def put(self, resource: Resource) -> Resource:
        with self.tx() as conn:
            conn.execute(
                "INSERT INTO resources (id, kind, name, parent, data) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
                "parent = excluded.parent, data = excluded.data",
                (
                    resource.id,
                    resource.kind,
                    resource.name,
                    resource.parent,
                    json.dumps(resource.data),
                ),
            )
        return resource

    def get(self, kind: str, resource_id: str) -> Resource | None:
        row = (
            self._conn()
            .execute(
                "SELECT id, kind, name, parent, data FROM resources WHERE id = ? AND kind = ?",
                (resource_id, kind),
            )
            .fetchone()
        )
        return _resource(row) if row else None

    def find(self, kind: str, name: str) -> list[Resource]:
        rows = self._conn().execute(
            "SELECT id, kind, name, parent, data FROM resources WHERE kind = ? AND name = ? "
            "ORDER BY rowid",
            (kind, name),
        )
        return [_resource(r) for r in rows]

    def list(self, kind: str, parent: str | None = None) -> list[Resource]:
        if parent is None:
            rows = self._conn().execute(
                "SELECT id, kind, name, parent, data FROM resources WHERE kind = ? ORDER BY rowid",
                (kind,),
            )
        else:
            rows = self._conn().execute(
                "SELECT id, kind, name, parent, data FROM resources "
                "WHERE kind = ? AND parent = ? ORDER BY rowid",
                (kind, parent),
            )
        return [_resource(r) for r in rows]

    def delete(self, kind: str, resource_id: str) -> None:
        with self.tx() as conn:
            conn.execute("DELETE FROM resources WHERE id = ? AND kind = ?", (resource_id, kind))

    def allocate_address(self, cidr: str, owner: str) -> str:
        """The owner's address in `cidr` (the first host is the bridge's), reserved once."""
        network = ipaddress.IPv4Network(cidr)
        with self.tx() as conn:
            mine = conn.execute(
                "SELECT address FROM addresses WHERE owner = ?", (owner,)
            ).fetchone()
            if mine:
                return str(mine[0])
            taken = {r[0] for r in conn.execute("SELECT address FROM addresses")}
            for host in list(network.hosts())[1:]:
                if str(host) not in taken:
                    conn.execute(
                        "INSERT INTO addresses (address, owner) VALUES (?, ?)", (str(host), owner)
                    )
                    return str(host)
        raise LocalCloudError(f"No free address left in {cidr}.")

    def release_address(self, owner: str) -> None:
        with self.tx() as conn:
            conn.execute("DELETE FROM addresses WHERE owner = ?", (owner,))


def _resource(row: tuple[str, str, str, str | None, str]) -> Resource:
    return Resource(row[0], row[1], row[2], row[3], json.loads(row[4]))
