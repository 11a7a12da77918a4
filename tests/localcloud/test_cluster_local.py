"""A PostgreSQL cluster on the local cloud through `cellar serve`, with each resource
manager: three members of two sizes, a grow, one member's resize, a shrink, a switchover
under a writer and a delete, each leaving the other members' PostgreSQL, server and
volume as they were; then a failover after the primary's server dies."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest
from test_backups_local import backup, completed
from test_local_serve import create, local_env, local_settings, show, wait_active  # noqa: F401

from cellar.cli.demo_db import TickWriter, connect_as, lost_ticks, resolve_all
from cellar.config import Settings
from cellar.localcloud.network import SERVER
from cellar.localcloud.servers import Servers, state_path
from cellar.localcloud.state import CloudState
from cellar.localcloud.volumes import VOLUME
from serving import cellar, serving, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local cloud needs root")

MANAGERS = pytest.mark.parametrize("manager", ["native", "orchestrator"])


@dataclass(frozen=True)
class Fingerprint:
    """What must not change when another member is operated on."""

    started: str
    server_id: str
    volume_id: str


class LocalCluster:
    """A cluster of a running `cellar serve`, seen as its user (and, for the member's
    server and volume, as an administrator), with its database's superuser password."""

    def __init__(self, http: httpx.Client, admin: httpx.Client, settings: Settings) -> None:
        self.http = http
        self.admin = admin
        self.settings = settings
        self.id = self.password = self.rw = self.ro = ""
        self.servers = Servers(settings, CloudState(state_path(settings)))

    def create(self, members: list[dict[str, Any]]) -> dict[str, Any]:
        r = self.http.post("/clusters", json={"cluster": {"name": "pg", "instances": members}})
        assert r.status_code == 200, r.text
        self.id = str(r.json()["cluster"]["id"])
        view = self.wait(lambda v: len(v["instances"]) == len(members))
        self.rw, self.ro = view["endpoints"]["rw"], view["endpoints"]["ro"]
        primary = self.member(view, role="primary")
        root = self.http.post(f"/instances/{primary['id']}/root")
        assert root.status_code == 200, root.text
        self.password = root.json()["user"]["password"]
        return view

    def show(self) -> dict[str, Any]:
        r = self.http.get(f"/clusters/{self.id}")
        assert r.status_code == 200, r.text
        return dict(r.json()["cluster"])

    def wait(self, done: Any, timeout: float = 300, *, fenced: str = "") -> dict[str, Any]:
        """The cluster once idle, every member but `fenced` ACTIVE and `done(view)`; an
        ERROR fails."""
        seen: dict[str, Any] = {}

        def idle() -> bool:
            seen.update(self.show())
            members = [m for m in seen["instances"] if m["name"] != fenced]
            assert seen["task"]["name"] != "ERROR", seen
            assert all(m["status"] != "ERROR" for m in members), seen
            return bool(
                seen["task"]["name"] == "NONE"
                and all(m["status"] == "ACTIVE" for m in members)
                and done(seen)
            )

        try:
            wait_until(f"cluster {self.id} done", idle, timeout=timeout, every=0.3)
        except AssertionError as exc:
            steps = [(e.get("step"), e.get("status"), e.get("message")) for e in self.events()]
            raise AssertionError(f"{exc}; last seen {seen}; last events {steps[-12:]}") from None
        return seen

    def act(self, body: dict[str, Any]) -> None:
        r = self.http.post(f"/clusters/{self.id}", json=body)
        assert r.status_code == 202, r.text

    def act_on(self, member_id: str, body: dict[str, Any]) -> None:
        r = self.http.post(f"/instances/{member_id}/action", json=body)
        assert r.status_code == 202, r.text

    @staticmethod
    def member(view: dict[str, Any], *, name: str = "", role: str = "") -> dict[str, Any]:
        found = [m for m in view["instances"] if m["name"] == name or m["role"] == role]
        assert len(found) == 1, (name, role, view["instances"])
        return dict(found[0])

    @staticmethod
    def replica_addresses(view: dict[str, Any]) -> list[str]:
        return sorted(m["ip"][0] for m in view["instances"] if m["role"] == "replica")

    def resolve(self, name: str) -> list[str]:
        return resolve_all(self.settings, name)

    def connect(self, address: str) -> psycopg.Connection[Any]:
        return connect_as(address, user="postgres", password=self.password, dbname="postgres")

    def connect_rw(self) -> psycopg.Connection[Any]:
        """To whatever the rw endpoint resolves to now."""
        addresses = self.resolve(self.rw)
        if not addresses:
            raise psycopg.OperationalError(f"{self.rw} does not resolve")
        return self.connect(addresses[0])

    def query(self, address: str, sql: str) -> Any:
        """The first column of the first row; None while `address` cannot answer it."""
        try:
            with self.connect(address) as conn:
                row = conn.execute(sql.encode()).fetchone()
        except psycopg.Error:
            return None
        return None if row is None else row[0]

    def count(self, address: str, table: str) -> int | None:
        found = self.query(address, f"SELECT count(*) FROM {table}")
        return None if found is None else int(found)

    def wait_rows(self, addresses: list[str], table: str, rows: int) -> None:
        for address in addresses:
            wait_until(
                f"{rows} rows of {table} at {address}",
                lambda a=address: self.count(a, table) == rows,
                timeout=60,
            )

    def streams_from(self, replica: str, primary: str) -> bool:
        """Whether `replica` is in recovery and its WAL receiver streams from `primary`."""
        sender = self.query(
            replica,
            "SELECT sender_host FROM pg_stat_wal_receiver WHERE status = 'streaming'"
            " AND pg_is_in_recovery()",
        )
        return bool(sender == primary)

    def fingerprint(self, member: dict[str, Any]) -> Fingerprint:
        r = self.admin.get(f"/mgmt/instances/{member['id']}")
        assert r.status_code == 200, r.text
        view = r.json()["instance"]
        started = self.query(member["ip"][0], "SELECT pg_postmaster_start_time()::text")
        assert started is not None, member
        return Fingerprint(str(started), view["server"]["id"], view["volume"]["id"])

    def fingerprints(self, view: dict[str, Any]) -> dict[str, Fingerprint]:
        return {m["name"]: self.fingerprint(m) for m in view["instances"]}

    def events(self) -> list[dict[str, Any]]:
        r = self.http.get(f"/clusters/{self.id}/events")
        assert r.status_code == 200, r.text
        return list(r.json()["events"])

    def delete(self) -> None:
        assert self.http.delete(f"/clusters/{self.id}").status_code == 202
        wait_until(
            "the cluster deleted",
            lambda: self.http.get(f"/clusters/{self.id}").status_code == 404,
            timeout=180,
        )


@contextmanager
def served_cluster(env: dict[str, str]) -> Iterator[LocalCluster]:
    """A `cellar serve` of `env`, stopped after the block, and its clients."""
    with serving(env) as served, served.client() as http:
        issued = cellar(served.env, "token", "issue", "--project", "admin", "--admin")
        assert issued.returncode == 0, issued.stderr
        with httpx.Client(
            base_url=f"{served.url}/v1.0/{served.project}",
            headers={"X-Auth-Token": issued.stdout.strip().splitlines()[-1]},
            timeout=60,
        ) as admin:
            yield LocalCluster(http, admin, local_settings(env))


def assert_nothing_left(env: dict[str, str], cluster: LocalCluster, view: dict[str, Any]) -> None:
    """No server, volume or endpoint of the cluster is left, and the audit is clean."""
    state = CloudState(state_path(cluster.settings))
    assert state.list(SERVER) == [] and state.list(VOLUME) == []
    assert cluster.resolve(view["endpoints"]["rw"]) == []
    assert cluster.resolve(view["endpoints"]["ro"]) == []
    audit = cellar(env, "audit")
    assert audit.returncode == 0, audit.stdout + audit.stderr


# Under `migration` a new cluster is orchestrated, its stack made by the same steps.
@pytest.mark.parametrize("manager", ["native", "orchestrator", "migration"])
def test_a_cluster_grows_resizes_shrinks_switches_over_and_goes(
    local_env: dict[str, str],  # noqa: F811
    manager: str,
) -> None:
    env = dict(local_env, CELLAR_RESOURCE_MANAGER=manager)
    with served_cluster(env) as pg:
        _scenario(env, pg)


def _scenario(env: dict[str, str], pg: LocalCluster) -> None:
    started = time.monotonic()
    view = pg.create(
        [
            {"flavorRef": "2", "volume": {"size": 2}, "name": "pg-a"},
            {"flavorRef": "1", "volume": {"size": 1}, "name": "pg-b"},
            {"flavorRef": "1", "volume": {"size": 1}, "name": "pg-c"},
        ]
    )
    print(f"cluster of three built in {time.monotonic() - started:.1f} s")
    engine = {"migration": "orchestrator"}.get(pg.settings.resource_manager)
    assert view["provisioning_engine"] == (engine or pg.settings.resource_manager)
    a, b, c = (pg.member(view, name=n) for n in ("pg-a", "pg-b", "pg-c"))
    assert (a["role"], b["role"], c["role"]) == ("primary", "replica", "replica")
    assert (a["flavor"]["id"], a["volume"]["size"]) == ("2", 2)
    assert (b["flavor"]["id"], b["volume"]["size"]) == ("1", 1)
    rw, ro = pg.rw, pg.ro
    primary = a["ip"][0]

    # Rows written on the primary are read on both replicas, which refuse writes.
    with pg.connect(primary) as conn:
        conn.execute("CREATE TABLE orders (id serial PRIMARY KEY, note text)")
        conn.execute(
            "INSERT INTO orders (note) SELECT 'order ' || i FROM generate_series(1, 100) i"
        )
    pg.wait_rows(pg.replica_addresses(view), "orders", 100)
    with pg.connect(b["ip"][0]) as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("INSERT INTO orders (note) VALUES ('refused')")
    assert pg.resolve(rw) == [primary]
    assert pg.resolve(ro) == pg.replica_addresses(view)
    before = pg.fingerprints(view)

    # Grow by one: it replicates; nobody else restarted or replaced; ro answers with it.
    started = time.monotonic()
    pg.act({"grow": [{"flavorRef": "1", "volume": {"size": 1}, "name": "pg-d"}]})
    view = pg.wait(lambda v: len(v["instances"]) == 4)
    print(f"grown by one in {time.monotonic() - started:.1f} s")
    d = pg.member(view, name="pg-d")
    assert d["role"] == "replica"
    pg.wait_rows([d["ip"][0]], "orders", 100)
    assert pg.streams_from(d["ip"][0], primary)
    after = pg.fingerprints(view)
    assert {n: after[n] for n in before} == before
    wait_until("ro with pg-d", lambda: pg.resolve(ro) == pg.replica_addresses(view), timeout=30)
    assert len(pg.resolve(ro)) == 3
    before = after

    # pg-b's volume grows, then its flavor: its filesystem is larger, it still streams,
    # and the others were left alone.
    started = time.monotonic()
    pg.act_on(b["id"], {"resize": {"volume": {"size": 2}}})
    view = pg.wait(lambda v: pg.member(v, name="pg-b")["volume"]["size"] == 2)
    print(f"pg-b's volume resized in {time.monotonic() - started:.1f} s")
    b_server = before["pg-b"].server_id
    data = os.statvfs(pg.servers.data_dir(b_server))
    assert data.f_blocks * data.f_frsize > 1.5 * 2**30
    started = time.monotonic()
    pg.act_on(b["id"], {"resize": {"flavorRef": "2"}})
    view = pg.wait(lambda v: pg.member(v, name="pg-b")["flavor"]["id"] == "2")
    print(f"pg-b's flavor resized in {time.monotonic() - started:.1f} s")
    assert pg.servers.get(b_server).flavor.id == "2"
    after = pg.fingerprints(view)
    assert {n: f for n, f in after.items() if n != "pg-b"} == {
        n: f for n, f in before.items() if n != "pg-b"
    }
    assert (after["pg-b"].server_id, after["pg-b"].volume_id) == (
        b_server,
        before["pg-b"].volume_id,
    )
    with pg.connect(primary) as conn:
        conn.execute("INSERT INTO orders (note) VALUES ('after the resize')")
    pg.wait_rows([b["ip"][0]], "orders", 101)
    assert pg.streams_from(b["ip"][0], primary)
    before = after

    # Shrink pg-c: the others unchanged, ro without it.
    pg.act({"shrink": [{"id": c["id"]}]})
    view = pg.wait(lambda v: all(m["id"] != c["id"] for m in v["instances"]))
    assert pg.http.get(f"/instances/{c['id']}").status_code == 404
    after = pg.fingerprints(view)
    assert after == {n: f for n, f in before.items() if n != "pg-c"}
    wait_until("ro without pg-c", lambda: pg.resolve(ro) == pg.replica_addresses(view), timeout=30)
    assert c["ip"][0] not in pg.resolve(ro) and len(pg.resolve(ro)) == 2

    # A backup taken from a replica (the group's one archive; its primary helps)...
    before_switchover = backup(pg.http, b["id"], "from-pg-b")
    full = completed(pg.http, before_switchover["id"])
    assert full["locationRef"].startswith(f"cellar-{pg.id}/"), full

    _switchover(pg, view)
    view = pg.show()

    # ... and the archive goes on from the new primary: a point in time after the
    # switchover, restored through the old primary (now a replica), has the row
    # committed before it and not the one after.
    new_primary = pg.member(view, name="pg-b")["ip"][0]
    with pg.connect(new_primary) as conn:
        conn.execute("INSERT INTO orders (note) VALUES ('after the switchover')")
        instant = time.time()
        wait_until("the clock past the instant", lambda: time.time() > instant + 0.2)
        conn.execute("INSERT INTO orders (note) VALUES ('too late')")
        conn.execute("SELECT pg_switch_wal()")
    at = datetime.fromtimestamp(instant, UTC)

    def window_reaches() -> bool:
        until = show(pg.http, a["id"]).get("restorable_until")
        return until is not None and datetime.fromisoformat(until) > at

    wait_until("the window to reach the instant", window_reaches, timeout=90, every=0.5)
    restored = create(
        pg.http, "pg-at", users=[], databases=[],
        restorePoint={"instance": a["id"], "restoreTime": at.isoformat()},
    )  # fmt: skip
    # A second backup, from pg-a (a replica of pg-b now), meanwhile.
    second = completed(pg.http, backup(pg.http, a["id"], "from-pg-a")["id"])
    assert second["locationRef"].startswith(f"cellar-{pg.id}/"), second
    address = wait_active(pg.http, restored, timeout=300)["ip"][0]
    root = pg.http.post(f"/instances/{restored}/root")
    assert root.status_code == 200, root.text
    secret = root.json()["user"]["password"]
    with connect_as(address, user="postgres", password=secret, dbname="postgres") as conn:
        row = conn.execute("SELECT string_agg(note, ',' ORDER BY id) FROM orders").fetchone()
        assert row is not None and str(row[0]).endswith(",after the resize,after the switchover")
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
    assert pg.http.delete(f"/instances/{restored}").status_code == 202
    wait_until("pg-at deleted", lambda: pg.http.get(f"/instances/{restored}").status_code == 404)

    pg.delete()
    assert_nothing_left(env, pg, view)


def _switchover(pg: LocalCluster, view: dict[str, Any]) -> None:
    """To pg-b while a writer inserts every 10 ms through whatever rw resolves to: no
    committed row lost, pg-a follows pg-b, rw moves."""
    a, b = pg.member(view, name="pg-a"), pg.member(view, name="pg-b")
    old, new = a["ip"][0], b["ip"][0]
    with pg.connect(old) as conn:
        TickWriter.create_table(conn)

    writer = TickWriter(pg.connect_rw).start()
    try:
        writer.wait_for_commit_after(time.monotonic(), timeout=10)
        started = time.monotonic()
        pg.act_on(b["id"], {"promote_to_replica_source": {}})
        view = pg.wait(lambda v: pg.member(v, name="pg-b")["role"] == "primary")
        print(f"switchover done in {time.monotonic() - started:.1f} s")
        writer.wait_for_commit_after(time.monotonic(), timeout=30)
    finally:
        report = writer.stop()
    assert pg.member(view, name="pg-a")["role"] == "replica"
    assert pg.resolve(pg.rw) == [new]
    with pg.connect(new) as conn:
        lost = lost_ticks(conn, report)
    ticks = pg.count(new, "ticks")
    assert ticks is not None and ticks >= len(report.commits)
    print(
        f"switchover under a 10 ms writer: {len(report.commits)} commits, longest write gap "
        f"{report.longest_gap_s() * 1000:.0f} ms, {report.errors} errors, {len(lost)} lost"
    )
    assert lost == []
    # The old primary streams from the new one, rows written after the switchover included.
    pg.wait_rows([old], "ticks", ticks)
    assert pg.streams_from(old, new)
    wait_until("ro after the switchover", lambda: pg.resolve(pg.ro) == pg.replica_addresses(view))
    assert old in pg.resolve(pg.ro) and new not in pg.resolve(pg.ro)


def kill_server(servers: Servers, server_id: str) -> None:
    """The server dies: every process in it (its agent, its PostgreSQL) is SIGKILLed,
    the agent last (an agent dead beside a live PostgreSQL would be started again, as a
    live server's init does)."""
    row = servers.state.get(SERVER, server_id)
    agent = None if row is None else row.data.get("agent_pid")
    for pid in sorted(servers.pids(server_id), key=lambda p: p == agent):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_until("the server's processes gone", lambda: servers.pids(server_id) == [], timeout=30)


@MANAGERS
def test_a_dead_primary_is_failed_over_automatically(
    local_env: dict[str, str],  # noqa: F811
    manager: str,
) -> None:
    env = dict(
        local_env,
        CELLAR_RESOURCE_MANAGER=manager,
        CELLAR_CLUSTER_AUTO_FAILOVER="1",
        CELLAR_CLUSTER_FAILOVER_AFTER_S="5",
    )
    with served_cluster(env) as pg:
        _failover(env, pg)


def _failover(env: dict[str, str], pg: LocalCluster) -> None:
    view = pg.create(
        [{"flavorRef": "1", "volume": {"size": 1}, "name": n} for n in ("pg-a", "pg-b", "pg-c")]
    )
    a = pg.member(view, name="pg-a")
    with pg.connect(a["ip"][0]) as conn:
        TickWriter.create_table(conn)
    pg.wait_rows(pg.replica_addresses(view), "ticks", 0)
    server_id = pg.fingerprint(a).server_id

    writer = TickWriter(pg.connect_rw).start()
    try:
        # The primary serves writes for a while (the watch sees where its WAL stands),
        # then its server dies under the writer.
        wait_until("300 commits", lambda: len(writer.report.commits) >= 300, timeout=60)
        killed = time.monotonic()
        kill_server(pg.servers, server_id)
        resumed = writer.wait_for_commit_after(time.monotonic(), timeout=120)
        print(f"failover: primary killed to a new primary taking writes: {resumed - killed:.1f} s")
        view = pg.wait(lambda v: pg.member(v, name="pg-a")["role"] == "replica", fenced="pg-a")
        writer.wait_for_commit_after(time.monotonic(), timeout=30)
    finally:
        report = writer.stop()
    new = pg.member(view, role="primary")["ip"][0]
    other = next(m for m in view["instances"] if m["role"] == "replica" and m["name"] != "pg-a")
    assert pg.resolve(pg.rw) == [new]
    assert pg.resolve(pg.ro) == [other["ip"][0]]
    with pg.connect(new) as conn:
        lost = lost_ticks(conn, report)
    print(f"failover: {len(lost)} of {len(report.commits)} commits lost (asynchronous)")
    # Only what the old primary committed just before it died may be lost.
    assert all(at > killed - 2 for n, at in report.commits if n in set(lost)), lost
    # The other replica follows the new primary, the writes after the failover included.
    ticks = pg.count(new, "ticks")
    assert ticks is not None
    pg.wait_rows([other["ip"][0]], "ticks", ticks)
    assert pg.streams_from(other["ip"][0], new)
    # The old primary is fenced: its security group lets nobody in.
    groups = pg.servers.get(server_id).security_group_ids
    assert groups and all(pg.servers.groups.get(g).rules == () for g in groups)
    messages = " | ".join(str(e.get("message") or "") for e in pg.events())
    assert "fenced pg-a" in messages and "lost window" in messages, messages
    # The new primary archives into the group's stanza: a backup from the other replica
    # (the new primary starting and stopping it) completes there.
    taken = completed(pg.http, backup(pg.http, other["id"], "after-the-failover")["id"])
    assert taken["locationRef"].startswith(f"cellar-{pg.id}/"), taken

    pg.delete()
    assert_nothing_left(env, pg, view)
