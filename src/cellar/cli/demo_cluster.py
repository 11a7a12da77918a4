"""The demo's cluster part (issue 10): a PostgreSQL cluster of three members of two sizes,
rows written through its read-write endpoint and read on every replica through the
read-only one, a grow, a switchover while a writer keeps inserting every 10 ms through
the read-write endpoint (the longest write gap and the rows lost are reported: none may
be lost), a shrink and a delete.

On the fake cloud the same operations run, without the database work."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import click
import psycopg
from rich.table import Table

from cellar.cli.client import ApiError, Client, console
from cellar.cli.clusters import wait_cluster
from cellar.cli.demo_db import TickWriter, connect_as, lost_ticks, resolve, resolve_all
from cellar.config import Settings

Cluster = dict[str, Any]
NAME = "demo-pg"
ROWS = 100


class StepRunner(Protocol):
    def run(self, title: str, fn: Callable[[], Any]) -> Any: ...


@dataclass
class ClusterFigures:
    """What the cluster part measured, for the demo's summary."""

    rows: int = 0
    replicas_read: list[str] = field(default_factory=list)
    switchover_gap_ms: float | None = None
    ticks_committed: int = 0
    ticks_lost: int | None = None
    rw_moved: tuple[str, str] | None = None

    def table(self) -> Table:
        table = Table(title="cellar demo: cluster")
        table.add_column("what")
        table.add_column("value", justify="right")
        table.add_row("rows written through the rw endpoint", str(self.rows))
        table.add_row("replicas that had them (via the ro endpoint)", str(len(self.replicas_read)))
        if self.rw_moved:
            table.add_row("rw endpoint during the switchover", " -> ".join(self.rw_moved))
        if self.switchover_gap_ms is not None:
            table.add_row("inserts committed across the switchover", str(self.ticks_committed))
            table.add_row("longest write gap (ms)", f"{self.switchover_gap_ms:.0f}")
            table.add_row("rows lost", str(self.ticks_lost))
        return table


def operate(
    client: Client,
    cluster_id: str,
    request: Callable[[], object] | None,
    *,
    done: Callable[[Cluster], bool] = lambda k: True,
    gone_ok: bool = False,
) -> Cluster | None:
    """Send `request`, follow the cluster (its task, each member's role and status) until
    the operation is over, then print the steps it took, with their messages. Without
    a request (it was sent already: a create), every step so far is printed."""
    last = 0
    if request is not None:
        last = max((int(e["id"]) for e in _events(client, cluster_id)), default=0)
        request()
    cluster = wait_cluster(client, cluster_id, done=done, gone_ok=gone_ok, timeout=300)
    for ev in _events(client, cluster_id):
        if int(ev["id"]) > last and ev["outcome"] != "started":
            took = "" if ev.get("duration_ms") is None else f"{ev['duration_ms']:>6} ms"
            mark = "[green]ok[/]" if ev["outcome"] == "succeeded" else f"[red]{ev['outcome']}[/]"
            note = f"  {ev['message']}" if ev.get("message") else ""
            console.print(f"    {ev['step']:<32} {mark} {took}{note}")
    return cluster


def _events(client: Client, cluster_id: str) -> list[dict[str, Any]]:
    """The cluster's steps so far; none once it is gone."""
    response = client.http.get(f"/clusters/{cluster_id}/events")
    if response.status_code == 404:
        return []
    if response.status_code >= 400:
        raise ApiError(response)
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def member(cluster: Cluster, name: str) -> dict[str, Any]:
    return next(dict(m) for m in cluster["instances"] if m["name"] == name)


def everyone_active(cluster: Cluster) -> bool:
    return all(m["status"] == "ACTIVE" for m in cluster["instances"])


class ClusterDatabase:
    """The cluster's PostgreSQL, as the postgres superuser, by its endpoints' names."""

    def __init__(self, settings: Settings, cluster: Cluster, password: str) -> None:
        self.settings = settings
        self.rw = str(cluster["endpoints"]["rw"])
        self.ro = str(cluster["endpoints"]["ro"])
        self.password = password
        self.rows = 0

    def connect(self, address: str | None = None) -> psycopg.Connection[Any]:
        """To `address`, or to whatever the rw endpoint resolves to now."""
        return connect_as(
            address or resolve(self.settings, self.rw),
            user="postgres",
            password=self.password,
            dbname="postgres",
        )

    def write(self) -> None:
        address = resolve(self.settings, self.rw)
        console.print(f"{self.rw} -> {address}")
        with self.connect(address) as conn:
            conn.execute("CREATE TABLE orders (id serial PRIMARY KEY, note text)")
            conn.execute(
                "INSERT INTO orders (note) SELECT 'order ' || i FROM generate_series(1, %s) i",
                (ROWS,),
            )
            TickWriter.create_table(conn)
            self.rows = _count(conn)
        console.print(f"wrote {self.rows} rows on the primary")

    def read_replicas(self, expected: list[str], timeout: float = 30) -> list[str]:
        """Wait until the ro endpoint answers with exactly the `expected` addresses and each
        of them has every row; those addresses."""
        deadline = time.monotonic() + timeout
        while (addresses := resolve_all(self.settings, self.ro)) != sorted(expected):
            if time.monotonic() > deadline:
                raise click.ClickException(f"{self.ro} -> {addresses}, expected {expected}")
            time.sleep(0.1)
        console.print(f"{self.ro} -> {', '.join(addresses)}")
        for address in addresses:
            while (found := self._count_at(address)) != self.rows:
                if time.monotonic() > deadline:
                    raise click.ClickException(f"{address} has {found} of {self.rows} rows")
                time.sleep(0.1)
            console.print(f"  replica {address}: all {found} rows, read-only")
        return addresses

    def _count_at(self, address: str) -> int | None:
        try:
            with self.connect(address) as conn:
                if conn.execute("SELECT pg_is_in_recovery()").fetchone() != (True,):
                    raise click.ClickException(f"{address} is not a replica")
                return _count(conn)
        except (psycopg.errors.UndefinedTable, psycopg.OperationalError):
            return None


def _count(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM orders").fetchone()
    return int(row[0]) if row else 0


def replica_addresses(cluster: Cluster) -> list[str]:
    return [m["ip"][0] for m in cluster["instances"] if m["role"] == "replica" and m["ip"]]


def cluster_scenario(client: Client, settings: Settings, steps: StepRunner) -> ClusterFigures:
    local = settings.backend == "local"
    figures = ClusterFigures()

    def create() -> Cluster:
        members = [
            {"flavorRef": "2", "volume": {"size": 2}, "name": "pg-a"},
            {"flavorRef": "1", "volume": {"size": 1}, "name": "pg-b"},
            {"flavorRef": "1", "volume": {"size": 1}, "name": "pg-c"},
        ]
        body = {"cluster": {"name": NAME, "instances": members}}
        made = client.request("POST", "/clusters", json=body)["cluster"]
        console.print(
            f"cluster {made['id']} accepted: pg-a (flavor 2, 2 GB) primary, "
            "pg-b and pg-c (flavor 1, 1 GB) replicas"
        )
        return operate(client, made["id"], None, done=everyone_active) or made

    cluster = steps.run("cluster: create 3 members of two sizes", create)
    cid = cluster["id"]

    def write_and_read() -> ClusterDatabase:
        primary = member(cluster, "pg-a")
        root = client.request("POST", f"/instances/{primary['id']}/root")
        db = ClusterDatabase(settings, cluster, root["user"]["password"])
        db.write()
        figures.rows = db.rows
        figures.replicas_read = db.read_replicas(replica_addresses(cluster))
        return db

    db: ClusterDatabase | None = None
    if local:
        db = steps.run("cluster: write on rw, read on each replica (ro)", write_and_read)

    def change(body: dict[str, Any], done: Callable[[Cluster], bool]) -> Cluster:
        """POST the grow or shrink `body`; once done, every replica has every row."""
        changed = operate(
            client, cid, lambda: client.request("POST", f"/clusters/{cid}", json=body), done=done
        )
        assert changed is not None
        if db is not None:
            db.read_replicas(replica_addresses(changed))
        return changed

    grow = [{"flavorRef": "1", "volume": {"size": 1}, "name": "pg-d"}]
    cluster = steps.run(
        "cluster: grow by one (pg-d)",
        lambda: change({"grow": grow}, lambda k: len(k["instances"]) == 4 and everyone_active(k)),
    )

    def switchover() -> Cluster:
        target = member(cluster, "pg-b")

        def promote() -> Cluster:
            done = operate(
                client,
                cid,
                lambda: client.request(
                    "POST",
                    f"/instances/{target['id']}/action",
                    json={"promote_to_replica_source": {}},
                ),
                done=lambda k: member(k, "pg-b")["role"] == "primary" and everyone_active(k),
            )
            assert done is not None
            return done

        if db is None:
            return promote()
        return writing_through(db, promote, figures)

    cluster = steps.run(
        "cluster: switchover to pg-b" + (" while writing every 10 ms" if local else ""),
        switchover,
    )

    old = member(cluster, "pg-a")

    def shrink() -> Cluster:
        console.print(f"pg-a ({old['id']}), the old primary, is a replica now: it goes")
        return change(
            {"shrink": [{"id": old["id"]}]},
            lambda k: all(m["id"] != old["id"] for m in k["instances"]),
        )

    cluster = steps.run("cluster: shrink (remove pg-a, the old primary)", shrink)

    def delete() -> None:
        operate(client, cid, lambda: client.request("DELETE", f"/clusters/{cid}"), gone_ok=True)

    steps.run("cluster: delete", delete)
    return figures


def writing_through(
    db: ClusterDatabase, promote: Callable[[], Cluster], figures: ClusterFigures
) -> Cluster:
    """`promote` while a writer inserts every 10 ms through the rw endpoint; records the
    longest gap between two commits and the committed rows the new primary lacks."""
    before = resolve(db.settings, db.rw)
    writer = TickWriter(db.connect).start()
    try:
        time.sleep(0.5)
        done = promote()
        # The writer must have written through the new primary before it stops.
        writer.wait_for_commit_after(time.monotonic(), timeout=30)
        time.sleep(0.3)
    finally:
        report = writer.stop()
    after = resolve(db.settings, db.rw)
    new_primary = next(m for m in done["instances"] if m["role"] == "primary")
    if after != new_primary["ip"][0]:
        raise click.ClickException(f"{db.rw} -> {after}, not the new primary")
    with db.connect() as conn:
        lost = lost_ticks(conn, report)
    figures.rw_moved = (before, after)
    figures.switchover_gap_ms = report.longest_gap_s() * 1000
    figures.ticks_committed = len(report.commits)
    figures.ticks_lost = len(lost)
    console.print(
        f"{len(report.commits)} inserts committed every 10 ms through {db.rw} "
        f"({before} -> {after}); longest gap {figures.switchover_gap_ms:.0f} ms, "
        f"{report.errors} failed and retried, {len(lost)} committed rows lost"
    )
    if lost:
        raise click.ClickException(f"committed rows lost in the switchover: {lost[:10]}")
    db.read_replicas(replica_addresses(done))
    return done


def delete_clusters(client: Client) -> None:
    """After a failed step: delete every cluster the demo made."""
    ids = [k["id"] for k in client.request("GET", "/clusters")["clusters"]]
    for cid in ids:
        client.request("DELETE", f"/clusters/{cid}")
    for cid in ids:
        wait_cluster(client, cid, gone_ok=True, timeout=180)
