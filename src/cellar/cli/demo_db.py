"""The demo's database work on a real instance: resolve its DNS name through cellar's DNS
server, connect with psycopg, write rows, keep writing while the volume grows."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import click
import psycopg

from cellar.cli.client import console
from cellar.config import Settings


def resolve(settings: Settings, name: str) -> str:
    """The A record of `name`, asked of cellar's own DNS server (not the host resolver)."""
    answers = resolve_all(settings, name)
    if not answers:
        raise click.ClickException(f"{name} did not resolve through cellar's DNS")
    return answers[0]


class DemoDatabase:
    def __init__(self, settings: Settings, inst: dict[str, Any], *, user: str, password: str):
        self.settings = settings
        self.hostname = str(inst["hostname"])
        self.user = user
        self.password = password
        self.rows = 0
        self.written_while_growing = 0

    def connect(self) -> psycopg.Connection[Any]:
        address = resolve(self.settings, self.hostname)
        return psycopg.connect(
            host=address,
            port=5432,
            user=self.user,
            password=self.password,
            dbname="shop",
            connect_timeout=5,
            autocommit=True,
        )

    def connect_and_write(self) -> None:
        address = resolve(self.settings, self.hostname)
        console.print(f"{self.hostname} -> {address} (cellar's DNS on 127.0.0.1)")
        with self.connect() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, note text)")
            for i in range(100):
                conn.execute("INSERT INTO orders (note) VALUES (%s)", (f"order {i}",))
            self.rows = self._count(conn)
        console.print(f"wrote {self.rows} rows as {self.user}")

    def _count(self, conn: psycopg.Connection[Any]) -> int:
        row = conn.execute("SELECT count(*) FROM orders").fetchone()
        return int(row[0]) if row else 0

    def check_rows(self) -> None:
        with self.connect() as conn:
            found = self._count(conn)
        if found != self.rows:
            raise click.ClickException(f"expected {self.rows} rows, found {found}")
        console.print(f"all {found} rows are there")

    @contextmanager
    def writing(self) -> Iterator[None]:
        """A writer that keeps inserting (and must not fail) while the block runs."""
        stop = threading.Event()
        errors: list[BaseException] = []

        def writer() -> None:
            try:
                with self.connect() as conn:
                    while not stop.is_set():
                        conn.execute("INSERT INTO orders (note) VALUES ('while growing')")
                        self.written_while_growing += 1
                        time.sleep(0.005)
            except BaseException as exc:  # reported below, after the resize
                errors.append(exc)

        thread = threading.Thread(target=writer, name="demo-writer")
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
        if errors:
            raise click.ClickException(f"the writer failed during the resize: {errors[0]}")
        self.rows += self.written_while_growing
        console.print(f"{self.written_while_growing} rows written while the volume grew")


def resolve_all(settings: Settings, name: str) -> list[str]:
    """Every A record of `name` (a record set: the replicas of a cluster), from cellar's
    DNS server; empty when the name does not resolve."""
    from dnslib import QTYPE, DNSRecord

    reply = DNSRecord.parse(
        DNSRecord.question(name, "A").send("127.0.0.1", settings.local_dns_port, timeout=2)
    )
    return sorted(str(r.rdata) for r in reply.rr if r.rtype == QTYPE.A)


def connect_as(address: str, *, user: str, password: str, dbname: str) -> psycopg.Connection[Any]:
    """A connection that fails fast on a server that died or was fenced: a 2 s connect
    timeout, and a write unacknowledged for 2 s breaks the connection (tcp_user_timeout)
    instead of waiting for TCP's retransmissions."""
    return psycopg.connect(
        host=address,
        port=5432,
        user=user,
        password=password,
        dbname=dbname,
        connect_timeout=2,
        tcp_user_timeout=2000,
        keepalives_idle=1,
        keepalives_interval=1,
        keepalives_count=2,
        autocommit=True,
    )


@dataclass
class WriteReport:
    """What a `TickWriter` saw: each committed tick's number and the time it committed."""

    commits: list[tuple[int, float]] = field(default_factory=list)
    errors: int = 0
    connects: int = 0

    @property
    def committed(self) -> set[int]:
        return {n for n, _ in self.commits}

    def longest_gap_s(self) -> float:
        """The longest time between two commits in a row."""
        times = [t for _, t in self.commits]
        return max((b - a for a, b in pairwise(times)), default=0.0)

    def first_commit_after(self, when: float) -> float | None:
        return next((t for _, t in self.commits if t > when), None)


class TickWriter:
    """A thread that inserts one numbered row into `ticks` every `every_s`, through
    `connect` (which resolves the name again each time): after any error it drops the
    connection and connects again. A tick counts as committed only when the insert
    returned; one that failed is in doubt (it may or may not be there), never lost."""

    def __init__(
        self, connect: Callable[[], psycopg.Connection[Any]], every_s: float = 0.01
    ) -> None:
        self.connect = connect
        self.every_s = every_s
        self.report = WriteReport()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tick-writer", daemon=True)

    @staticmethod
    def create_table(conn: psycopg.Connection[Any]) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS ticks (n bigint PRIMARY KEY, at timestamptz)")

    def start(self) -> TickWriter:
        self._thread.start()
        return self

    def stop(self) -> WriteReport:
        self._stop.set()
        self._thread.join()
        return self.report

    def wait_for_commit_after(self, when: float, timeout: float) -> float:
        """The time of the first commit after `when`, waiting up to `timeout` for it."""
        deadline = time.monotonic() + timeout
        while (found := self.report.first_commit_after(when)) is None:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise click.ClickException(f"no write committed within {timeout:.0f} s")
            time.sleep(0.01)
        return found

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        n = 0
        while not self._stop.is_set():
            started = time.monotonic()
            n += 1
            try:
                if conn is None:
                    self.report.connects += 1
                    conn = self.connect()
                conn.execute("INSERT INTO ticks VALUES (%s, now())", (n,))
                self.report.commits.append((n, time.monotonic()))
            except psycopg.Error:
                self.report.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
            self._stop.wait(max(0.0, self.every_s - (time.monotonic() - started)))
        if conn is not None:
            conn.close()


def lost_ticks(conn: psycopg.Connection[Any], report: WriteReport) -> list[int]:
    """The ticks committed on the client's side that `conn`'s server does not have."""
    found = {int(r[0]) for r in conn.execute("SELECT n FROM ticks").fetchall()}
    return sorted(report.committed - found)
