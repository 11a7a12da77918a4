"""Backups and restores on the local cloud, measured side by side in one run (issue 11,
"Measured").

One instance (flavor 3, 4 GB) holds pgbench data (`pgbench -i -s 70`, about 1 GB),
loaded through its address; the archiver catches up before anything is timed.

(a) backup_ratio: alternately, (raw) `pgbackrest backup --type=full` by hand, as the
    postgres account on the host, of the instance's data directory into a posix
    repository of its own on the same disk as cellar's (lz4, process-max 2, start-fast:
    cellar's repository settings; archive-check off, since the instance archives into
    cellar's stanza), and (cellar) `POST /backups` until the backup is COMPLETED (taken
    through the guest's pgBackRest server and checked: page checksums as it is taken, or
    `verify` where the cluster has none; each run prints the job's own stamps: its start,
    `pgbackrest backup`, `info`, `verify` if it ran). Throughput is the set's
    database size (pgBackRest's own figure) over the time; the ratio is cellar's median
    throughput over raw's. Target >= 0.8.
(b) restore_ratio: alternately, (raw) `pgbackrest restore` by hand of the last cellar
    set (`--type=immediate --target-action=promote`, process-max 2), straight from
    cellar's repository, into a fresh XFS loop volume made before the clock starts, then
    `pg_ctl start` until the server has promoted; and (cellar) `POST /instances` with
    restorePoint {backupRef} until the new instance is ACTIVE. The ratio is cellar's
    median over raw's. Target <= 1.3.
(c) pitr_exact: a small instance; a backup; an insert every 100 ms, each commit's
    interval (before the insert was sent, after it returned) recorded by the client;
    restores to random instants at least 30 ms from any commit (a commit that close to
    its instant is ambiguous); true only if each restore holds exactly the rows whose
    commit returned before its instant.

Prints each run, min / median / max, and, last, one JSON object. Needs root.

    .venv/bin/python bench/backup.py [--scale 70] [--runs 4] [--pitr-restores 5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from cellar.cli.client import Client
from cellar.cli.embedded import free_port, issue_token, serving
from cellar.config import Settings, settings_from_env
from cellar.domain.backups import BackupSet, stanza_name
from cellar.localcloud.backups import BackupRepository
from cellar.localcloud.cleanup import teardown
from cluster import spread, xfs_volume  # bench/cluster.py, beside this one

PGBIN = Path("/usr/lib/postgresql/15/bin")
AS_POSTGRES = ("runuser", "-u", "postgres", "--")
RAW_STANZA = "bench"
Instance = dict[str, Any]
MiB = 2**20


def sh(*argv: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd="/")
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {(result.stderr or result.stdout).strip()}")
    return result.stdout.strip()


def wait(what: str, done: Callable[[], bool], timeout: float = 600, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(every)


class Bench:
    def __init__(self, settings: Settings, client: Client) -> None:
        self.settings = settings
        self.client = client
        self.repository = BackupRepository(settings)

    def instance(self, iid: str) -> Instance:
        found: Instance = self.client.request("GET", f"/instances/{iid}")["instance"]
        return found

    def active(self, iid: str, timeout: float = 900) -> Instance:
        def done() -> bool:
            inst = self.instance(iid)
            if inst["status"] == "ERROR":
                raise SystemExit(f"instance {inst['name']} is ERROR: {inst.get('fault')}")
            return bool(inst["status"] == "ACTIVE")

        wait(f"instance {iid} ACTIVE", done, timeout)
        return self.instance(iid)

    def create(self, name: str, flavor: str, size: int, **extra: Any) -> str:
        body = {"name": name, "flavorRef": flavor, "volume": {"size": size}, **extra}
        made = self.client.request("POST", "/instances", json={"instance": body})["instance"]
        return str(made["id"])

    def delete(self, iid: str) -> None:
        self.client.request("DELETE", f"/instances/{iid}")
        wait(f"instance {iid} deleted", lambda: self.client.instance(iid) is None, 300, 0.3)

    def backup(self, iid: str, name: str) -> dict[str, Any]:
        """POST /backups until COMPLETED (and the instance idle again)."""
        body = {"backup": {"name": name, "instance": iid}}
        bid = self.client.request("POST", "/backups", json=body)["backup"]["id"]

        def done() -> bool:
            found = self.client.request("GET", f"/backups/{bid}")["backup"]
            if found["status"] == "FAILED":
                raise SystemExit(f"backup {name} FAILED: {found.get('fail_reason')}")
            return bool(found["status"] == "COMPLETED")

        wait(f"backup {name}", done, every=0.05)
        found: dict[str, Any] = self.client.request("GET", f"/backups/{bid}")["backup"]
        return found

    def root(self, iid: str) -> str:
        return str(self.client.request("POST", f"/instances/{iid}/root")["user"]["password"])


def connect(address: str, password: str, user: str = "postgres") -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=address, port=5432, user=user, password=password, dbname="postgres",
        connect_timeout=5, autocommit=True,
    )  # fmt: skip


def archive_caught_up(conn: psycopg.Connection[Any]) -> None:
    """Switch to a new WAL segment and wait until every finished one is archived."""
    row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
    assert row is not None
    switched = str(row[0])

    def done() -> bool:
        found = conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()
        return found is not None and found[0] is not None and str(found[0]) >= switched

    wait("the archiver to catch up", done, timeout=900, every=0.5)


# (a) Backups.


class RawRepository:
    """A posix repository of the bench's own, on the same disk as cellar's, with
    cellar's repository settings, backing up the instance's data directory in place."""

    def __init__(self, root: Path, pg: dict[str, Any]) -> None:
        self.root = root
        self.conf = root / "raw.conf"
        for sub in ("repo", "log", "lock"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)
        sh("chown", "-R", "postgres:postgres", str(root))
        self.conf.write_text(
            "\n".join([
                "[global]", f"repo1-path={root / 'repo'}", f"log-path={root / 'log'}",
                f"lock-path={root / 'lock'}", "log-level-file=off", "log-level-console=warn",
                "compress-type=lz4", "process-max=2", "start-fast=y", "archive-check=n",
                "repo1-retention-full-type=count", "repo1-retention-full=9999999", "",
                f"[{RAW_STANZA}]", f"pg1-path={pg['pgdata']}", f"pg1-port={pg['port']}",
                f"pg1-socket-path={pg['socket_dir']}", "",
            ])
        )  # fmt: skip
        self.conf.chmod(0o644)
        self.pgbackrest("stanza-create")

    def pgbackrest(self, *args: str) -> str:
        return sh(
            *AS_POSTGRES, "pgbackrest", f"--config={self.conf}", f"--stanza={RAW_STANZA}", *args
        )

    def backup(self) -> tuple[float, int, float]:
        """A full backup; (seconds, database bytes of the set, seconds a `verify` of the
        set takes after it: not counted, for comparison with cellar's, which verifies)."""
        t0 = time.perf_counter()
        self.pgbackrest("--type=full", "backup")
        elapsed = time.perf_counter() - t0
        last = json.loads(self.pgbackrest("--output=json", "info"))[0]["backup"][-1]
        t0 = time.perf_counter()
        self.pgbackrest(f"--set={last['label']}", "verify")
        return elapsed, int(last["info"]["size"]), time.perf_counter() - t0


def cellar_backup(b: Bench, iid: str, name: str) -> tuple[float, int, BackupSet]:
    """(seconds from POST to COMPLETED, database bytes of the set, the set)."""
    t0 = time.perf_counter()
    found = b.backup(iid, name)
    elapsed = time.perf_counter() - t0
    sets = b.repository.backup_sets(stanza_name(iid))
    mine = next(s for s in sets if s.backup_id == found["id"])
    return elapsed, mine.database_size_bytes, mine


def job_clock(b: Bench, backup_id: str) -> tuple[dict[str, float], str]:
    """The detached job's own stamps (epoch seconds: spawned, job started, `pgbackrest
    backup` ended, `info` ended, `verify` ended if it ran) and how the set was checked."""
    job = json.loads((b.repository.jobs / f"{backup_id}.json").read_text())
    return dict(job.get("clock", {})), str(job.get("checked", "verify"))


# (b) Restores.


def raw_restore(b: Bench, stanza: str, label: str, work: Path) -> float:
    """`pgbackrest restore` of cellar's set straight from its repository, then PostgreSQL
    started until it has promoted; seconds (the volume is made before the clock)."""
    with xfs_volume(work, 4) as mnt:
        data, port = mnt / "pgdata", free_port()
        t0 = time.perf_counter()
        sh(
            *AS_POSTGRES, "pgbackrest", f"--config={b.repository.conf}", f"--stanza={stanza}",
            f"--pg1-path={data}", f"--set={label}", "--type=immediate",
            "--target-action=promote", "--process-max=2", "restore",
        )  # fmt: skip
        options = (
            f"-c listen_addresses='' -c port={port} -c unix_socket_directories='{mnt}' "
            "-c archive_mode=off"
        )
        pg_ctl = (*AS_POSTGRES, str(PGBIN / "pg_ctl"), "-D", str(data))
        sh(*pg_ctl, "-l", str(mnt / "pg.log"), "-w", "-t", "600", "-o", options, "start")
        try:
            with psycopg.connect(
                host=str(mnt), port=port, user="postgres", dbname="postgres", autocommit=True
            ) as conn:

                def promoted() -> bool:
                    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                    return row is not None and row[0] is False

                wait("the raw restore to promote", promoted, every=0.02)
            elapsed = time.perf_counter() - t0
        finally:
            sh(*pg_ctl, "-m", "immediate", "-w", "stop")
    return elapsed


def cellar_restore(b: Bench, backup_id: str, n: int) -> float:
    t0 = time.perf_counter()
    rid = b.create(
        f"bench-restored-{n}", "3", 4, restorePoint={"backupRef": backup_id},
        users=[], databases=[],
    )  # fmt: skip
    b.active(rid)
    elapsed = time.perf_counter() - t0
    events = b.client.events(rid)
    b.delete(rid)
    slow = [e for e in events if (e.get("duration_ms") or 0) >= 100 and e["step"] != e["operation"]]
    steps = ", ".join(f"{e['step']} {e['duration_ms'] / 1000:.2f} s" for e in slow)
    print(f"  cellar: POST to ACTIVE in {elapsed:.2f} s ({steps})")
    return elapsed


def measure_big(args: argparse.Namespace, b: Bench, work: Path) -> dict[str, Any]:
    print(f"(a) backups of an instance holding pgbench data (scale {args.scale})")
    t0 = time.perf_counter()
    iid = b.create("bench-data", "3", 4)
    address = b.active(iid)["ip"][0]
    print(f"  instance (flavor 3, 4 GB) ACTIVE in {time.perf_counter() - t0:.1f} s")
    password = b.root(iid)
    t0 = time.perf_counter()
    sh(
        str(PGBIN / "pgbench"), "-i", "-q", "-s", str(args.scale), "-h", address,
        "-U", "postgres", "postgres", env={**os.environ, "PGPASSWORD": password},
    )  # fmt: skip
    with connect(address, password) as conn:
        conn.execute("CHECKPOINT")
        row = conn.execute("SELECT pg_database_size('postgres')").fetchone()
        size_mb = int(row[0]) / MiB if row else 0.0
        print(f"  pgbench -i: {size_mb:.0f} MiB in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        archive_caught_up(conn)
        print(f"  WAL archive caught up {time.perf_counter() - t0:.1f} s later")

    stanza = stanza_name(iid)
    raw = RawRepository(work / "raw-backups", b.repository.host(stanza, iid))
    print(f"  warm-up raw backup (not counted): {raw.backup()[0]:.2f} s")
    raw_s: list[float] = []
    raw_rate: list[float] = []
    raw_verify: list[float] = []
    cellar_s: list[float] = []
    cellar_rate: list[float] = []
    cellar_command: list[float] = []
    last: tuple[str, str] = ("", "")
    for i in range(args.runs):
        for side in ("raw", "cellar") if i % 2 == 0 else ("cellar", "raw"):
            if side == "raw":
                took, size, verify = raw.backup()
                raw_s.append(took)
                raw_rate.append(size / MiB / took)
                raw_verify.append(verify)
                note = f"; a verify of the set after it {verify:.2f} s, not counted"
            else:
                took, size, made = cellar_backup(b, iid, f"bench-{i}")
                cellar_s.append(took)
                cellar_rate.append(size / MiB / took)
                last = (str(made.backup_id), made.label)
                clock, checked = job_clock(b, str(made.backup_id))
                command = clock.get("backup", 0.0) - clock.get("job", 0.0)
                cellar_command.append(command)
                parts = (("job start", "spawned", "job"), ("info", "backup", "info"),
                         ("verify", "info", "verify"))  # fmt: skip
                stamps = "".join(
                    f", {name} {clock[z] - clock[a]:.2f} s"
                    for name, a, z in parts
                    if a in clock and z in clock
                )
                note = f"; of which `pgbackrest backup` {command:.2f} s{stamps}; by {checked}"
            rate = size / MiB / took
            print(f"  {side:>6}: {size / MiB:.0f} MiB in {took:.2f} s ({rate:.0f} MiB/s){note}")
    print(f"raw pgbackrest backup:    {spread(raw_s, 's')}; {spread(raw_rate, 'MiB/s', 0)}")
    print(f"cellar POST to COMPLETED: {spread(cellar_s, 's')}; {spread(cellar_rate, 'MiB/s', 0)}")
    print(f"raw verify of a set:      {spread(raw_verify, 's')}")
    print(f"cellar's backup command:  {spread(cellar_command, 's')}")
    results: dict[str, Any] = {
        "data_mib": round(size / MiB),
        "raw_backup_mib_s": round(statistics.median(raw_rate)),
        "cellar_backup_mib_s": round(statistics.median(cellar_rate)),
        "backup_ratio": round(statistics.median(cellar_rate) / statistics.median(raw_rate), 2),
    }

    backup_id, label = last
    print(f"(b) restores of backup {backup_id} (set {label}): by hand, and by POST /instances")
    warm = raw_restore(b, stanza, label, work)
    print(f"  warm-up raw restore (not counted): {warm:.2f} s")
    raw_r: list[float] = []
    cellar_r: list[float] = []
    for i in range(args.runs):
        for side in ("raw", "cellar") if i % 2 else ("cellar", "raw"):
            if side == "raw":
                raw_r.append(raw_restore(b, stanza, label, work))
                print(f"     raw: restored and promoted in {raw_r[-1]:.2f} s")
            else:
                cellar_r.append(cellar_restore(b, backup_id, i))
    print(f"raw pgbackrest restore + start: {spread(raw_r, 's')}")
    print(f"cellar POST to ACTIVE:          {spread(cellar_r, 's')}")
    results.update(
        raw_restore_s=round(statistics.median(raw_r), 2),
        cellar_restore_s=round(statistics.median(cellar_r), 2),
        restore_ratio=round(statistics.median(cellar_r) / statistics.median(raw_r), 2),
    )
    b.delete(iid)
    return results


# (c) Point in time.


def pick_instants(
    commits: list[tuple[int, float, float]], count: int, margin: float = 0.03
) -> list[float]:
    """Random instants between the first and the last commit, each at least `margin`
    seconds away from every commit's interval."""
    lo, hi = commits[0][2] + margin, commits[-1][1] - margin
    chosen: list[float] = []
    rng = random.Random()
    while len(chosen) < count:
        t = rng.uniform(lo, hi)
        if all(t < a - margin or t > z + margin for _, a, z in commits):
            chosen.append(t)
    return sorted(chosen)


def measure_pitr(args: argparse.Namespace, b: Bench) -> dict[str, Any]:
    print(f"(c) point in time: an insert every 100 ms, {args.pitr_restores} restores")
    user, secret = "bench", "bench-" + os.urandom(6).hex()
    iid = b.create(
        "bench-pitr", "1", 1, databases=[{"name": "bench"}],
        users=[{"name": user, "password": secret, "databases": [{"name": "bench"}]}],
    )  # fmt: skip
    address = b.active(iid)["ip"][0]

    def bench_db(host: str) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=host, port=5432, user=user, password=secret, dbname="bench",
            connect_timeout=5, autocommit=True,
        )  # fmt: skip

    with bench_db(address) as conn:
        conn.execute("CREATE TABLE ticks (n int PRIMARY KEY)")
    b.backup(iid, "pitr-base")
    commits: list[tuple[int, float, float]] = []  # (n, sent, returned), wall clock
    with bench_db(address) as conn:
        for n in range(1, args.pitr_seconds * 10 + 1):
            started = time.time()
            conn.execute("INSERT INTO ticks VALUES (%s)", (n,))
            commits.append((n, started, time.time()))
            time.sleep(max(0.0, 0.1 - (time.time() - started)))
    spans = sorted((z - a) * 1000 for _, a, z in commits)
    print(
        f"  {len(commits)} commits, each taking min {spans[0]:.1f} / median "
        f"{statistics.median(spans):.1f} / max {spans[-1]:.1f} ms"
    )
    with connect(address, b.root(iid)) as conn:
        conn.execute("SELECT pg_switch_wal()")
    last = datetime.fromtimestamp(commits[-1][2], UTC).replace(microsecond=0)

    def reached() -> bool:
        until = b.instance(iid).get("restorable_until")
        return until is not None and datetime.fromisoformat(until) >= last

    wait("the window to reach the last commit", reached, timeout=180, every=1)
    instants = pick_instants(commits, args.pitr_restores)
    restores = []
    for k, t in enumerate(instants):
        at = datetime.fromtimestamp(t, UTC).isoformat()
        rid = b.create(
            f"bench-pitr-{k}", "1", 1, restorePoint={"instance": iid, "restoreTime": at},
            users=[], databases=[],
        )  # fmt: skip
        restores.append((rid, t, at))
    exact = True
    for rid, t, at in restores:
        host = b.active(rid)["ip"][0]
        with bench_db(host) as conn:
            found = [int(r[0]) for r in conn.execute("SELECT n FROM ticks ORDER BY n").fetchall()]
        expected = [n for n, _, z in commits if z < t]
        ok = found == expected
        exact = exact and ok
        near = min(min(abs(t - a), abs(t - z)) for _, a, z in commits) * 1000
        print(
            f"  {at}: {len(found)} rows, expected {len(expected)} "
            f"({'exact' if ok else 'WRONG'}; nearest commit {near:.0f} ms away)"
        )
        b.delete(rid)
    b.delete(iid)
    return {"pitr_exact": exact, "pitr_restores": len(restores)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=70, help="pgbench scale (70: ~1 GiB)")
    parser.add_argument("--runs", type=int, default=4, help="backups and restores, each side")
    parser.add_argument("--pitr-restores", type=int, default=5)
    parser.add_argument("--pitr-seconds", type=int, default=20, help="of the insert loop")
    parser.add_argument("--skip-big", action="store_true", help="(c) only")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/backup.py needs root (loop devices, mounts, namespaces)")
    state = Path(tempfile.mkdtemp(prefix="cellar-bench-"))
    state.chmod(0o755)  # volumes are mounted below it and the postgres user must reach them
    os.environ.setdefault("CELLAR_LOG_LEVEL", "WARNING")
    settings = settings_from_env(state_dir=state, backend="local", api_port=free_port())
    token = issue_token(settings, "bench")
    results: dict[str, Any] = {}
    try:
        with serving(settings) as served:
            b = Bench(settings, Client(served.url, token, "bench"))
            try:
                if not args.skip_big:
                    results.update(measure_big(args, b, state))
                results.update(measure_pitr(args, b))
            finally:
                for inst in b.client.request("GET", "/instances")["instances"]:
                    b.client.http.delete(f"/instances/{inst['id']}")
                deadline = time.monotonic() + 180
                while b.client.request("GET", "/instances")["instances"]:
                    if time.monotonic() > deadline:
                        print("instances still there after 180 s")
                        break
                    time.sleep(0.5)
    finally:
        # This run's own cloud: bridge, host firewall table, mounts, the repositories.
        teardown(settings)
        shutil.rmtree(state, ignore_errors=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
