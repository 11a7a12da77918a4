"""`FakeCloud`: the state the six fake drivers share, kept in one SQLite file.

Several processes may open the same file (the task manager, `cellar audit`, a test that
injects faults), and a cloud survives the death of any of them. Each driver call is one
short `BEGIN IMMEDIATE` transaction that counts the call, fires a fault if one is due,
then does the work; a refused call rolls its work back but stays counted.
"""

from __future__ import annotations

import inspect
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cellar.drivers.backup.base import BackupDriver, BackupError
from cellar.drivers.base import DriverError, ServiceUnavailable
from cellar.drivers.compute.base import ComputeDriver, ServerError
from cellar.drivers.dns.base import DNSDriver
from cellar.drivers.fake.store import Tx, connect
from cellar.drivers.guest.base import GuestDriver, GuestError
from cellar.drivers.network.base import NetworkDriver
from cellar.drivers.volume.base import VolumeDriver, VolumeError

_SERVICES: dict[str, tuple[type[object], type[DriverError]]] = {
    "compute": (ComputeDriver, ServerError),
    "volume": (VolumeDriver, VolumeError),
    "network": (NetworkDriver, DriverError),
    "dns": (DNSDriver, DriverError),
    "guest": (GuestDriver, GuestError),
    "backup": (BackupDriver, BackupError),
}

# Every public method of the six driver bases, as "<service>.<method>".
OPERATIONS: tuple[str, ...] = tuple(
    f"{service}.{name}"
    for service, (base, _) in _SERVICES.items()
    for name, member in vars(base).items()
    if inspect.isfunction(member) and not name.startswith("_")
)

# Called inside the failing call's transaction when a permanent fault fires.
OnFault = Callable[[Tx, DriverError], None]


class FakeCloud:
    """A fake cloud in the SQLite file at `path`; every call takes `latency_s` seconds,
    and servers and volumes take as long again to build."""

    def __init__(self, path: Path | str, latency_s: float = 0.0) -> None:
        self.path = Path(path)
        self.latency_s = latency_s
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._conn: sqlite3.Connection | None = connect(self.path)

    @staticmethod
    def operations() -> list[str]:
        """Every operation `inject_fault` accepts, e.g. "compute.create_server"."""
        return list(OPERATIONS)

    def inject_fault(self, operation: str, *, nth: int = 1, transient: bool = False) -> None:
        """Make the `nth` call of `operation` from now fail, with `ServiceUnavailable` if
        `transient`, else with the service's permanent error; it fails before any change.

        A permanent fault on "compute.create_server" leaves an ERROR server behind, as
        Nova does: it carries the requested name and flavor, no address and no security
        group, and `delete_server` removes it.
        """
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; see FakeCloud.operations()")
        if nth < 1:
            raise ValueError(f"nth counts calls from 1, not {nth}")
        with self._transaction() as tx:
            tx.add_fault(operation, nth=nth, transient=transient)

    def clear_faults(self) -> None:
        """Drop every fault not yet fired."""
        with self._transaction() as tx:
            tx.clear_faults()

    def call_count(self, operation: str) -> int:
        """Calls of `operation` made so far on this cloud (by any process), failed ones too."""
        with self._transaction() as tx:
            return tx.call_count(operation)

    def peek(self, kind: str, resource_id: str) -> dict[str, Any] | None:
        """For tests: a resource's stored data, read without counting a call."""
        with self._transaction() as tx:
            row = tx.get(kind, resource_id)
            return None if row is None else dict(row.data)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def call(self, operation: str, on_fault: OnFault | None = None) -> Iterator[Tx]:
        """One driver call: the latency, then a transaction that counts the call, fires
        a due fault, and runs the body; if the body raises, its writes are undone."""
        if self.latency_s > 0:
            time.sleep(self.latency_s)
        with self._transaction(commit_on_error=True) as tx:
            transient = tx.take_fault(operation, tx.count_call(operation))
            if transient is not None:
                raise self._fault(tx, operation, transient, on_fault)
            with tx.undone_on_error():
                yield tx

    def _fault(
        self, tx: Tx, operation: str, transient: bool, on_fault: OnFault | None
    ) -> DriverError | ServiceUnavailable:
        kind = "transient" if transient else "permanent"
        message = f"Injected {kind} fault in {operation}."
        if transient:
            return ServiceUnavailable(message)
        error = _SERVICES[operation.split(".")[0]][1](message)
        if on_fault is not None:
            on_fault(tx, error)
        return error

    @contextmanager
    def _transaction(self, *, commit_on_error: bool = False) -> Iterator[Tx]:
        """One `BEGIN IMMEDIATE` transaction; if the body raises, it is rolled back unless
        `commit_on_error` (a driver call stays counted however it ends)."""
        if self._pid != os.getpid():
            self._lock = threading.Lock()  # inherited through fork: maybe held by a dead thread
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise ServiceUnavailable(f"The fake cloud is busy: {exc}.") from exc
            try:
                yield Tx(conn)
            except BaseException:
                conn.execute("COMMIT" if commit_on_error else "ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            # Closed, or inherited through fork: a connection is never shared by processes.
            self._conn, self._pid = connect(self.path), os.getpid()
        return self._conn
