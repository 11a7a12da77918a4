"""The fake cloud's SQLite file, and the rows one transaction reads and writes.

One table holds every resource (`kind`, `id`, `name`, `parent`, JSON `data`), indexed by
id, by name and by parent (a rule's group, a volume's server, a guest's server). Small
side tables answer the reverse questions without a scan: which servers use a security
group, which addresses are taken. `calls` and `faults` drive fault injection.
"""

from __future__ import annotations

import ipaddress
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

JSON = dict[str, Any]

SERVER, VOLUME, GROUP, RULE, RECORD, GUEST = "server", "volume", "group", "rule", "record", "guest"

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
CREATE TABLE IF NOT EXISTS server_groups (
    group_id TEXT NOT NULL,
    server_id TEXT NOT NULL,
    PRIMARY KEY (group_id, server_id)
);
CREATE INDEX IF NOT EXISTS server_groups_by_server ON server_groups (server_id);
CREATE TABLE IF NOT EXISTS addresses (address TEXT PRIMARY KEY, server_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS addresses_by_server ON addresses (server_id);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS calls (operation TEXT PRIMARY KEY, count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS faults (
    operation TEXT NOT NULL,
    fire_at INTEGER NOT NULL,
    transient INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS faults_by_operation ON faults (operation, fire_at);
"""

_NETWORK = ipaddress.IPv4Network("10.99.0.0/16")
_HOSTS = _NETWORK.num_addresses - 2


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), schema created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # `timeout` is SQLite's busy timeout: how long to wait for another process's write.
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return conn


@dataclass(frozen=True)
class Row:
    id: str
    kind: str
    name: str
    parent: str | None
    data: JSON

    def changed(self, **data: Any) -> Row:
        """A copy with some data keys set (a None value removes the key)."""
        merged = {k: v for k, v in {**self.data, **data}.items() if v is not None}
        return replace(self, data=merged)

    def moved(self, parent: str | None) -> Row:
        return replace(self, parent=parent)


_COLUMNS = "id, kind, name, parent, data"


def _row(raw: tuple[str, str, str, str | None, str]) -> Row:
    return Row(raw[0], raw[1], raw[2], raw[3], json.loads(raw[4]))


class Tx:
    """The reads and writes of one transaction; `now` is fixed when it began."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.now = time.time()

    @contextmanager
    def undone_on_error(self) -> Iterator[None]:
        """Undo the block's writes if it raises (the transaction goes on)."""
        self._conn.execute("SAVEPOINT block")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK TO block")
            raise
        finally:
            self._conn.execute("RELEASE block")

    def _one(self, sql: str, *args: object) -> Row | None:
        raw = self._conn.execute(sql, args).fetchone()
        return None if raw is None else _row(raw)

    def _many(self, sql: str, *args: object) -> list[Row]:
        return [_row(raw) for raw in self._conn.execute(sql, args)]

    def get(self, kind: str, resource_id: str) -> Row | None:
        return self._one(
            f"SELECT {_COLUMNS} FROM resources WHERE id = ? AND kind = ?", resource_id, kind
        )

    def by_name(self, kind: str, name: str) -> list[Row]:
        """Rows of this kind and name, oldest first."""
        return self._many(
            f"SELECT {_COLUMNS} FROM resources WHERE kind = ? AND name = ? ORDER BY rowid",
            kind,
            name,
        )

    def children(self, kind: str, parent: str) -> list[Row]:
        return self._many(
            f"SELECT {_COLUMNS} FROM resources WHERE parent = ? AND kind = ? ORDER BY rowid",
            parent,
            kind,
        )

    def all(self, kind: str) -> list[Row]:
        return self._many(f"SELECT {_COLUMNS} FROM resources WHERE kind = ? ORDER BY rowid", kind)

    def insert(self, row: Row) -> Row:
        self._conn.execute(
            f"INSERT INTO resources ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
            (row.id, row.kind, row.name, row.parent, json.dumps(row.data)),
        )
        return row

    def update(self, row: Row) -> Row:
        self._conn.execute(
            "UPDATE resources SET name = ?, parent = ?, data = ? WHERE id = ?",
            (row.name, row.parent, json.dumps(row.data), row.id),
        )
        return row

    def delete(self, resource_id: str) -> None:
        self._conn.execute("DELETE FROM resources WHERE id = ?", (resource_id,))

    def delete_children(self, kind: str, parent: str) -> None:
        self._conn.execute("DELETE FROM resources WHERE parent = ? AND kind = ?", (parent, kind))

    # Servers' security groups.
    def link_groups(self, server_id: str, group_ids: tuple[str, ...]) -> None:
        self._conn.executemany(
            "INSERT OR IGNORE INTO server_groups (group_id, server_id) VALUES (?, ?)",
            [(group_id, server_id) for group_id in group_ids],
        )

    def server_using(self, group_id: str) -> str | None:
        raw = self._conn.execute(
            "SELECT server_id FROM server_groups WHERE group_id = ? LIMIT 1", (group_id,)
        ).fetchone()
        return None if raw is None else str(raw[0])

    def forget_server(self, server_id: str) -> None:
        """Release a deleted server's security groups and addresses."""
        self._conn.execute("DELETE FROM server_groups WHERE server_id = ?", (server_id,))
        self._conn.execute("DELETE FROM addresses WHERE server_id = ?", (server_id,))

    def allocate_address(self, server_id: str) -> str:
        """The next free address of 10.99.0.0/16 (unique among live servers)."""
        for _ in range(_HOSTS):
            host = self._next("address") % _HOSTS + 1
            address = str(_NETWORK.network_address + host)
            cursor = self._conn.execute(
                "INSERT OR IGNORE INTO addresses (address, server_id) VALUES (?, ?)",
                (address, server_id),
            )
            if cursor.rowcount == 1:
                return address
        raise RuntimeError(f"the fake cloud has no free address left in {_NETWORK}")

    def _next(self, counter: str) -> int:
        raw = self._conn.execute(
            "INSERT INTO counters (name, value) VALUES (?, 0) "
            "ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
            (counter,),
        ).fetchone()
        return int(raw[0])

    # Calls and faults.
    def count_call(self, operation: str) -> int:
        """Count one call of `operation`; the new count."""
        raw = self._conn.execute(
            "INSERT INTO calls (operation, count) VALUES (?, 1) "
            "ON CONFLICT (operation) DO UPDATE SET count = count + 1 RETURNING count",
            (operation,),
        ).fetchone()
        return int(raw[0])

    def call_count(self, operation: str) -> int:
        raw = self._conn.execute(
            "SELECT count FROM calls WHERE operation = ?", (operation,)
        ).fetchone()
        return 0 if raw is None else int(raw[0])

    def take_fault(self, operation: str, call: int) -> bool | None:
        """Consume the fault set for this call of `operation`: its `transient`, or None."""
        raw = self._conn.execute(
            "DELETE FROM faults WHERE operation = ? AND fire_at = ? RETURNING transient",
            (operation, call),
        ).fetchall()
        return None if not raw else bool(raw[0][0])

    def add_fault(self, operation: str, *, nth: int, transient: bool) -> None:
        self._conn.execute(
            "INSERT INTO faults (operation, fire_at, transient) VALUES (?, ?, ?)",
            (operation, self.call_count(operation) + nth, int(transient)),
        )

    def clear_faults(self) -> None:
        self._conn.execute("DELETE FROM faults")


def pending(data: JSON, now: float) -> str | None:
    """The transitional status in `data` (`pending` until `until`), while it lasts."""
    status = data.get("pending")
    if status is not None and now < float(data["until"]):
        return str(status)
    return None


def settle_in(status: str, now: float, latency_s: float) -> JSON:
    """Data keys for a status that lasts `latency_s` from now."""
    return {"pending": status, "until": now + latency_s}
