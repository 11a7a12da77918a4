"""The demo's backup part (issue 11), on the local cloud: a backup of the demo's
instance, rows written after it one by one with the instant each commit returned, and a
point-in-time restore into a new instance to an instant between two of them: the rows
committed before that instant are there, the rows after it are not."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import click
import psycopg
from rich.table import Table

from cellar.cli.client import Client, console, wait_for
from cellar.cli.demo_db import DemoDatabase
from cellar.config import Settings

MARKS = 6
SPACING_S = 0.3
# The restore point falls between these two marks.
BEFORE, AFTER = 3, 4


class StepRunner(Protocol):
    def run(self, title: str, fn: Callable[[], Any]) -> Any: ...


@dataclass(frozen=True)
class Mark:
    n: int
    sent: datetime
    committed: datetime


def backup_scenario(
    client: Client, settings: Settings, steps: StepRunner, inst: dict[str, Any], db: DemoDatabase
) -> None:
    iid = str(inst["id"])
    steps.run("backup", lambda: take_backup(client, iid))
    marks: list[Mark] = steps.run("rows after the backup, with their commit times", db_marks(db))
    instant = (
        marks[BEFORE - 1].committed + (marks[AFTER - 1].sent - marks[BEFORE - 1].committed) / 2
    )
    steps.run("archive the last commits", lambda: archive_now(client, iid, inst, marks[-1]))
    restored = steps.run(
        f"restore to {instant.isoformat(timespec='milliseconds')}",
        lambda: restore(client, iid, instant),
    )
    steps.run("check the restored rows", lambda: check(settings, db, restored, marks, instant))

    def delete() -> None:
        last = client.last_event(restored["id"])
        client.request("DELETE", f"/instances/{restored['id']}")
        wait_for(client, restored["id"], until=(), gone_ok=True, after=last)

    steps.run("delete the restored instance", delete)


def take_backup(client: Client, iid: str) -> None:
    body = {"backup": {"name": "demo-backup", "instance": iid, "description": "the demo's"}}
    made = client.request("POST", "/backups", json=body)["backup"]
    console.print(f"backup {made['id']} accepted: {made['status']}")
    with console.status(f"backup {made['id']}") as status:
        while True:
            found = client.request("GET", f"/backups/{made['id']}")["backup"]
            inst = client.instance(iid) or {}
            status.update(f"backup {made['id']}: {found['status']} (instance {inst.get('status')})")
            if found["status"] == "FAILED":
                raise click.ClickException(f"the backup FAILED: {found.get('fail_reason')}")
            if found["status"] == "COMPLETED":
                break
            time.sleep(0.2)
    # The window of points in time opens in the second after the one the set ended in
    # (whole-second stamps): the rows to restore between come after that.
    opens = datetime.fromisoformat(found["updated"]).replace(tzinfo=UTC) + timedelta(seconds=1)
    while datetime.now(UTC) < opens:
        time.sleep(0.05)
    size_mb = (found.get("size") or 0) * 1024
    console.print(
        f"backup COMPLETED (checked by pgBackRest): {size_mb:.1f} MB in the repository, "
        f"{found['locationRef']}"
    )


def db_marks(db: DemoDatabase) -> Callable[[], list[Mark]]:
    def write() -> list[Mark]:
        marks: list[Mark] = []
        with db.connect() as conn:
            conn.execute("CREATE TABLE marks (n int PRIMARY KEY)")
            for n in range(1, MARKS + 1):
                sent = datetime.now(UTC)
                conn.execute("INSERT INTO marks VALUES (%s)", (n,))
                marks.append(Mark(n, sent, datetime.now(UTC)))
                time.sleep(SPACING_S)
        for m in marks:
            console.print(
                f"  mark {m.n} committed by {m.committed.isoformat(timespec='milliseconds')}"
            )
        return marks

    return write


def archive_now(client: Client, iid: str, inst: dict[str, Any], last: Mark) -> None:
    """`pg_switch_wal()` as the superuser (the archive would otherwise wait up to its
    60 s timeout), then wait until the restorable window reaches the last mark."""
    password = client.request("POST", f"/instances/{iid}/root")["user"]["password"]
    with psycopg.connect(
        host=inst["ip"][0], port=5432, user="postgres", password=password,
        dbname="postgres", connect_timeout=5, autocommit=True,
    ) as conn:  # fmt: skip
        conn.execute("SELECT pg_switch_wal()")
    deadline = time.monotonic() + 120
    while True:
        shown = client.instance(iid) or {}
        until = shown.get("restorable_until")
        if until and datetime.fromisoformat(until) >= last.committed.replace(microsecond=0):
            console.print(f"restorable from {shown['restorable_from']} until {until}")
            return
        if time.monotonic() > deadline:
            raise click.ClickException(f"the restorable window ends at {until} after 120 s")
        time.sleep(0.5)


def restore(client: Client, iid: str, instant: datetime) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "demo-db-restored",
        "flavorRef": "1",
        "volume": {"size": 2},
        "restorePoint": {"instance": iid, "restoreTime": instant.isoformat()},
        # A restored instance has its source's users and databases.
        "users": [],
        "databases": [],
    }
    inst = client.request("POST", "/instances", json={"instance": body})["instance"]
    console.print(f"instance {inst['id']} accepted: {inst['status']}")
    done = wait_for(client, inst["id"])
    if done is None:
        raise click.ClickException("the restored instance disappeared")
    return done


def check(
    settings: Settings,
    source: DemoDatabase,
    restored: dict[str, Any],
    marks: list[Mark],
    instant: datetime,
) -> None:
    db = DemoDatabase(settings, restored, user=source.user, password=source.password)
    with db.connect() as conn:
        found = {int(r[0]) for r in conn.execute("SELECT n FROM marks").fetchall()}
        row = conn.execute("SELECT count(*) FROM orders").fetchone()
        orders = int(row[0]) if row else 0
    table = Table(title=f"restored to {instant.isoformat(timespec='milliseconds')}")
    table.add_column("mark")
    table.add_column("committed at")
    table.add_column("before the instant")
    table.add_column("in the restore")
    wrong = []
    for m in marks:
        before = m.committed < instant
        table.add_row(
            str(m.n), m.committed.isoformat(timespec="milliseconds"),
            "yes" if before else "no", "yes" if m.n in found else "no",
        )  # fmt: skip
        if before != (m.n in found):
            wrong.append(m.n)
    console.print(table)
    console.print(f"{orders} orders from before the backup are there too")
    if wrong or orders != source.rows:
        raise click.ClickException(f"the restore is wrong: marks {wrong}, {orders} orders")
    console.print(
        f"[green]marks 1 to {BEFORE} are there, {AFTER} to {MARKS} are not[/], as committed"
    )
