"""The demo's database work on a real instance: resolve its DNS name through cellar's DNS
server, connect with psycopg, write rows, keep writing while the volume grows."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import psycopg

from cellar.cli.client import console
from cellar.config import Settings


def resolve(settings: Settings, name: str) -> str:
    """The A record of `name`, asked of cellar's own DNS server (not the host resolver)."""
    from dnslib import QTYPE, DNSRecord

    reply = DNSRecord.parse(
        DNSRecord.question(name, "A").send("127.0.0.1", settings.local_dns_port, timeout=2)
    )
    answers = [str(r.rdata) for r in reply.rr if r.rtype == QTYPE.A]
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
