"""Clusters on the local cloud, measured side by side in one run (issue 10, "Measured").

(a) replica_ratio: a cluster whose primary holds pgbench data (`pgbench -i -s 35`, over
    500 MB); alternately, (raw) `pg_basebackup -X stream --checkpoint=fast` through a
    slot of its own from that primary, by hand, onto a fresh XFS loop volume, then the
    standby started, until the primary sees it streaming with under 16 MB of lag; and
    (cellar) `POST /clusters/{id}` {"grow": [...]} until the same holds for the new
    member; after one untimed copy (the page cache), each of the two going first in
    turn. The ratio is cellar's median over raw's. Target <= 1.3.
(b) switchover_gap_ms and lost_commits: a writer inserts every 10 ms through the
    cluster's rw endpoint (re-resolving it, reconnecting on error) across planned
    switchovers (`promote_to_replica_source`) of that same cluster, back and forth: the
    longest time between two commits, and the committed rows missing afterwards (must be
    0). Target gap under 5000 ms.
(c) failover_s: with automatic failover on (its default timings), every process of the
    primary's server SIGKILLed (the server died: no clean stop, its guest agent gone
    too) while the writer writes; the time from the kill to the first write committed
    on the new primary through the rw endpoint. Target under 30 s.

Prints each run, min / median / max, and, last, one JSON object. Needs root.

    .venv/bin/python bench/cluster.py [--scale 35] [--runs 5] [--switchovers 3] [--failovers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psycopg

from cellar.cli.client import Client
from cellar.cli.demo_db import TickWriter, connect_as, lost_ticks, resolve
from cellar.cli.embedded import free_port, issue_token, serving
from cellar.config import Settings, settings_from_env
from cellar.domain.replication import REPLICATION_USER, slot_name
from cellar.domain.specs import resource_name
from cellar.drivers.local.guest import LocalGuestDriver
from cellar.localcloud.cleanup import teardown
from cellar.localcloud.servers import Servers, state_path
from cellar.localcloud.state import CloudState

PGBIN = Path("/usr/lib/postgresql/15/bin")
LAG_OK = 16 * 2**20
Cluster = dict[str, Any]

# The primary's walsender for `slot`: its lag once it streams to a running standby.
STREAMING_LAG = """
SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::bigint
FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid
WHERE s.slot_name = %s AND r.state = 'streaming' AND r.replay_lsn IS NOT NULL
"""


def sh(*argv: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def spread(values: list[float], unit: str, digits: int = 2) -> str:
    each = ", ".join(f"{v:.{digits}f}" for v in values)
    return (
        f"min {min(values):.{digits}f} / median {statistics.median(values):.{digits}f} / "
        f"max {max(values):.{digits}f} {unit} ({each})"
    )


class Bench:
    def __init__(self, settings: Settings, client: Client) -> None:
        self.settings = settings
        self.client = client

    def cluster(self, cid: str) -> Cluster:
        found: Cluster = self.client.request("GET", f"/clusters/{cid}")["cluster"]
        return found

    def wait(self, cid: str, done: Callable[[Cluster], bool], timeout: float = 600) -> Cluster:
        deadline = time.monotonic() + timeout
        while True:
            k = self.cluster(cid)
            if k["task"]["name"] == "ERROR":
                raise SystemExit(f"cluster {k['name']} is ERROR: {k.get('fault')}")
            if k["task"]["name"] == "NONE" and done(k):
                return k
            if time.monotonic() > deadline:
                raise SystemExit(f"cluster {k['name']}: timed out, task {k['task']['name']}")
            time.sleep(0.1)

    def create(self, name: str, members: list[tuple[str, int]]) -> Cluster:
        body = [{"flavorRef": f, "volume": {"size": s}} for f, s in members]
        made = self.client.request(
            "POST", "/clusters", json={"cluster": {"name": name, "instances": body}}
        )["cluster"]
        return self.wait(made["id"], all_active)

    def root_password(self, k: Cluster) -> str:
        primary = primary_of(k)
        return str(
            self.client.request("POST", f"/instances/{primary['id']}/root")["user"]["password"]
        )

    def connect_rw(self, k: Cluster, password: str) -> psycopg.Connection[Any]:
        address = resolve(self.settings, k["endpoints"]["rw"])
        return connect_as(address, user="postgres", password=password, dbname="postgres")

    def events_since(self, cid: str, after: int) -> list[dict[str, Any]]:
        events = self.client.request("GET", f"/clusters/{cid}/events")["events"]
        return [e for e in events if int(e["id"]) > after]

    def last_event(self, cid: str) -> int:
        return max((int(e["id"]) for e in self.events_since(cid, 0)), default=0)


def all_active(k: Cluster) -> bool:
    return all(m["status"] == "ACTIVE" for m in k["instances"])


def primary_of(k: Cluster) -> dict[str, Any]:
    return next(dict(m) for m in k["instances"] if m["role"] == "primary")


def streaming_lag(conn: psycopg.Connection[Any], slot: str) -> int | None:
    row = conn.execute(STREAMING_LAG, (slot,)).fetchone()
    return None if row is None or row[0] is None else int(row[0])


# (a) A replica by hand, and by a grow.


@contextmanager
def xfs_volume(work: Path, size_gb: int) -> Iterator[Path]:
    """A fresh XFS file system on a sparse file through a loop device, as the local
    cloud's volumes are; owned by postgres."""
    image, mnt = work / "raw.img", work / "mnt"
    mnt.mkdir(exist_ok=True)
    with open(image, "wb") as f:
        f.truncate(size_gb << 30)
    sh("mkfs.xfs", "-q", "-f", str(image))
    loop = sh("losetup", "--find", "--show", str(image))
    try:
        sh("mount", loop, str(mnt))
        try:
            shutil.chown(mnt, "postgres", "postgres")
            yield mnt
        finally:
            sh("umount", str(mnt))
    finally:
        sh("losetup", "-d", loop)
        image.unlink()


def raw_replica(
    primary: psycopg.Connection[Any], address: str, replication_password: str, work: Path
) -> float:
    """pg_basebackup through its own slot as cellar's replication role, then a standby
    started, until it streams with under 16 MB of lag; seconds (the volume is made before
    the clock starts)."""
    slot = "bench_raw"
    env = {**os.environ, "PGPASSWORD": replication_password}
    with xfs_volume(work, 4) as mnt:
        data, port = mnt / "pgdata", free_port()
        as_postgres = ("runuser", "-u", "postgres", "--")
        t0 = time.perf_counter()
        sh(
            *as_postgres, str(PGBIN / "pg_basebackup"), "-h", address, "-p", "5432",
            "-U", REPLICATION_USER, "-D", str(data), "-X", "stream", "-C", "-S", slot,
            "--checkpoint=fast", "-R", "--no-password",
            env=env,
        )  # fmt: skip
        options = f"-c listen_addresses='' -p {port} -c unix_socket_directories='{mnt}'"
        pg_ctl = (*as_postgres, str(PGBIN / "pg_ctl"), "-D", str(data))
        sh(*pg_ctl, "-l", str(mnt / "pg.log"), "-w", "-o", options, "start")
        try:
            while (lag := streaming_lag(primary, slot)) is None or lag >= LAG_OK:
                time.sleep(0.02)
            elapsed = time.perf_counter() - t0
            size = sh("du", "-sb", str(data)).split()[0]
        finally:
            sh(*pg_ctl, "-m", "immediate", "-w", "stop")
            primary.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    print(f"  raw: {int(size) / 2**20:.0f} MB copied, streaming in {elapsed:.2f} s")
    return elapsed


def cellar_replica(
    b: Bench, primary: psycopg.Connection[Any], cid: str, flavor: str, size: int
) -> tuple[float, float, str]:
    """POST grow until the new member streams with under 16 MB of lag; (seconds to that,
    seconds until it is ACTIVE and the cluster idle, its id)."""
    before = {m["id"] for m in b.cluster(cid)["instances"]}
    body = {"grow": [{"flavorRef": flavor, "volume": {"size": size}}]}
    t0 = time.perf_counter()
    b.client.request("POST", f"/clusters/{cid}", json=body)
    new = ""
    while not new:
        new = next((m["id"] for m in b.cluster(cid)["instances"] if m["id"] not in before), "")
        time.sleep(0.02)
    while (lag := streaming_lag(primary, slot_name(new))) is None or lag >= LAG_OK:
        time.sleep(0.02)
    streaming = time.perf_counter() - t0
    b.wait(cid, all_active)
    active = time.perf_counter() - t0
    print(f"  cellar: grow streaming in {streaming:.2f} s, ACTIVE (cluster idle) in {active:.2f} s")
    return streaming, active, new


# (b) and (c): a writer across a switchover or a failover.


def write_across(
    b: Bench, k: Cluster, password: str, act: Callable[[], tuple[float, float]]
) -> tuple[float, float, int, int, float]:
    """`act` while a writer inserts every 10 ms through the rw endpoint. `act` returns when
    it started and after when a commit can only be the new primary's. (longest gap s,
    seconds from the start to the first such commit, commits, lost commits, seconds from
    the start until the cluster was idle again)."""
    with b.connect_rw(k, password) as conn:
        conn.execute("TRUNCATE ticks")  # each run numbers its ticks from 1
    writer = TickWriter(lambda: b.connect_rw(k, password)).start()
    try:
        time.sleep(1.0)
        writer.wait_for_commit_after(time.monotonic(), timeout=10)  # it writes now
        started, settled = act()
        resumed = writer.wait_for_commit_after(settled, timeout=120)
        idle = b.wait(k["id"], has_primary)
        idle_s = time.monotonic() - started
        time.sleep(0.5)
    finally:
        report = writer.stop()
    with b.connect_rw(idle, password) as conn:
        lost = lost_ticks(conn, report)
    return report.longest_gap_s(), resumed - started, len(report.commits), len(lost), idle_s


def has_primary(k: Cluster) -> bool:
    """An answering primary (a failed-over one, fenced, answers no more)."""
    return any(m["role"] == "primary" and m["status"] == "ACTIVE" for m in k["instances"])


def switchover(b: Bench, k: Cluster, password: str) -> tuple[float, int]:
    candidate = next(m for m in k["instances"] if m["role"] == "replica")

    def act() -> tuple[float, float]:
        t0 = time.monotonic()
        b.client.request(
            "POST", f"/instances/{candidate['id']}/action", json={"promote_to_replica_source": {}}
        )
        return t0, t0

    gap, _, commits, lost, idle_s = write_across(b, k, password, act)
    done = b.wait(k["id"], lambda c: primary_of(c)["id"] == candidate["id"] and all_active(c))
    print(
        f"  switchover to {candidate['name']}: longest write gap {gap * 1000:.0f} ms, "
        f"{commits} commits, {lost} lost; the cluster idle {idle_s:.1f} s after the request"
    )
    assert primary_of(done)["id"] == candidate["id"]
    return gap, lost


def kill_server(settings: Settings, instance_id: str) -> int:
    """SIGKILL every process of the instance's server (its database and guest agent): the
    server died. Its namespace, address and volume stay, as a hung machine's would."""
    servers = Servers(settings, CloudState(state_path(settings)))
    info = servers.find(resource_name(instance_id))
    assert info is not None, f"no server for {instance_id}"
    pids = servers.pids(info.id)
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def failover(b: Bench, k: Cluster, password: str) -> tuple[float, int]:
    old = primary_of(k)
    last = b.last_event(k["id"])

    def act() -> tuple[float, float]:
        t0 = time.monotonic()
        killed = kill_server(b.settings, old["id"])
        print(f"  killed {killed} processes of {old['name']}'s server (primary)")
        # An insert acknowledged just as the kill began is the old primary's, not a sign
        # of the new one: count from half a second after the kill.
        return t0, time.monotonic() + 0.5

    _gap, first, commits, lost, idle_s = write_across(b, k, password, act)
    print(
        f"  failover: first write on the new primary {first:.2f} s after the kill "
        f"(cluster idle after {idle_s:.1f} s); {commits} commits, {lost} committed and lost"
    )
    for ev in b.events_since(k["id"], last):
        if ev.get("message"):
            print(f"    {ev['step']}: {ev['message']}")
    return first, lost


def replace_dead(b: Bench, cid: str, flavor: str, size: int, name: str) -> Cluster:
    """Shrink away the fenced old primary and grow a new replica, `name`, in its place."""
    k = b.cluster(cid)
    dead = [m for m in k["instances"] if m["status"] != "ACTIVE"]
    if dead:
        b.client.request(
            "POST", f"/clusters/{cid}", json={"shrink": [{"id": m["id"]} for m in dead]}
        )
        b.wait(cid, lambda c: len(c["instances"]) == len(k["instances"]) - len(dead))
    member = {"flavorRef": flavor, "volume": {"size": size}, "name": name}
    b.client.request("POST", f"/clusters/{cid}", json={"grow": [member]})
    return b.wait(cid, lambda c: len(c["instances"]) == len(k["instances"]) and all_active(c))


def run(args: argparse.Namespace, settings: Settings, b: Bench) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="cellar-bench-raw-"))
    work.chmod(0o755)  # postgres must reach the mount below it
    try:
        return measure(args, settings, b, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(args: argparse.Namespace, settings: Settings, b: Bench, work: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}

    print("(a) a replica of a primary holding pgbench data: by hand, and by a grow")
    t0 = time.perf_counter()
    big = b.create("bench-data", [("3", 4)])
    print(f"  cluster of one (flavor 3, 4 GB) built in {time.perf_counter() - t0:.1f} s")
    password = b.root_password(big)
    address = primary_of(big)["ip"][0]
    t0 = time.perf_counter()
    sh(
        str(PGBIN / "pgbench"), "-i", "-q", "-s", str(args.scale), "-h", address,
        "-U", "postgres", "postgres",
        env={**os.environ, "PGPASSWORD": password},
    )  # fmt: skip
    with b.connect_rw(big, password) as conn:
        conn.execute("CHECKPOINT")
        row = conn.execute("SELECT pg_database_size('postgres')").fetchone()
    size_mb = int(row[0]) / 2**20 if row else 0.0
    print(f"  pgbench -i -s {args.scale}: {size_mb:.0f} MB in {time.perf_counter() - t0:.1f} s")
    replication_password = LocalGuestDriver(settings).replication_password(big["id"])
    raw: list[float] = []
    streaming: list[float] = []
    active: list[float] = []
    with b.connect_rw(big, password) as primary:
        # Untimed: the first copy reads the data into the page cache, which either side
        # would otherwise pay alone.
        print("  warm-up copy (not counted):")
        raw_replica(primary, address, replication_password, work)
        for i in range(args.runs):
            if i % 2:  # each goes first in turn
                raw.append(raw_replica(primary, address, replication_password, work))
            s, a, new = cellar_replica(b, primary, big["id"], "3", 4)
            streaming.append(s)
            active.append(a)
            if i % 2 == 0:
                raw.append(raw_replica(primary, address, replication_password, work))
            if i < args.runs - 1:  # the last one stays, for the switchovers
                b.client.request("POST", f"/clusters/{big['id']}", json={"shrink": [{"id": new}]})
                b.wait(big["id"], lambda c: len(c["instances"]) == 1)
    print(f"raw pg_basebackup + standby streaming: {spread(raw, 's')}")
    print(f"cellar grow to streaming:              {spread(streaming, 's')}")
    print(f"cellar grow to ACTIVE, cluster idle:   {spread(active, 's')}")
    results.update(
        data_mb=round(size_mb),
        raw_replica_s=round(statistics.median(raw), 2),
        cellar_replica_s=round(statistics.median(streaming), 2),
        cellar_replica_active_s=round(statistics.median(active), 2),
        replica_ratio=round(statistics.median(streaming) / statistics.median(raw), 2),
        replica_ratio_active=round(statistics.median(active) / statistics.median(raw), 2),
    )

    print(f"(b) planned switchovers of that cluster ({round(size_mb)} MB), writing every 10 ms")
    big = b.cluster(big["id"])
    with b.connect_rw(big, password) as conn:
        TickWriter.create_table(conn)
    gaps: list[float] = []
    lost_total = 0
    for _ in range(args.switchovers):
        big = b.cluster(big["id"])
        gap, lost = switchover(b, big, password)
        gaps.append(gap * 1000)
        lost_total += lost
    print(f"switchover longest write gap: {spread(gaps, 'ms', 0)}; commits lost: {lost_total}")
    results.update(
        switchover_gap_ms=round(max(gaps)),
        switchover_gap_ms_median=round(statistics.median(gaps)),
        lost_commits=lost_total,
    )
    b.client.request("DELETE", f"/clusters/{big['id']}")

    print(
        f"(c) automatic failover (after {settings.cluster_failover_after_s:g} s of silence, "
        f"watched every {settings.cluster_watch_interval_s:g} s): the primary's server killed"
    )
    small = b.create("bench-fo", [("1", 1), ("1", 1), ("1", 1)])
    fo_password = b.root_password(small)
    with b.connect_rw(small, fo_password) as conn:
        TickWriter.create_table(conn)
    times: list[float] = []
    fo_lost = 0
    for i in range(args.failovers):
        small = b.cluster(small["id"])
        took, lost = failover(b, small, fo_password)
        times.append(took)
        fo_lost += lost
        if i < args.failovers - 1:
            # Named: a default name after a shrink may be a live member's (bench-fo-3).
            replace_dead(b, small["id"], "1", 1, f"bench-fo-new{i}")
    print(f"failover, kill to the first write on the new primary: {spread(times, 's')}")
    results.update(
        failover_s=round(max(times), 2),
        failover_s_median=round(statistics.median(times), 2),
        failover_lost_commits=fo_lost,
    )
    b.client.request("DELETE", f"/clusters/{small['id']}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=35, help="pgbench scale (35: ~520 MB)")
    parser.add_argument("--runs", type=int, default=5, help="replicas by hand and by grow")
    parser.add_argument("--switchovers", type=int, default=3)
    parser.add_argument("--failovers", type=int, default=2)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/cluster.py needs root (loop devices, mounts, namespaces)")
    state = Path(tempfile.mkdtemp(prefix="cellar-bench-"))
    state.chmod(0o755)  # volumes are mounted below it and the postgres user must reach them
    os.environ.setdefault("CELLAR_LOG_LEVEL", "WARNING")
    settings = settings_from_env(
        state_dir=state, backend="local", api_port=free_port(), cluster_auto_failover=True
    )
    token = issue_token(settings, "bench")
    try:
        with serving(settings) as served:
            b = Bench(settings, Client(served.url, token, "bench"))
            try:
                results = run(args, settings, b)
            finally:
                for k in b.client.request("GET", "/clusters")["clusters"]:
                    b.client.http.delete(f"/clusters/{k['id']}")
                deadline = time.monotonic() + 180
                while b.client.request("GET", "/clusters")["clusters"]:
                    if time.monotonic() > deadline:
                        print("clusters still there after 180 s")
                        break
                    time.sleep(0.5)
    finally:
        # This run's own cloud: bridge, host firewall table and mounts go too.
        teardown(settings)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
