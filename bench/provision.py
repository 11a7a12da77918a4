"""Provisioning cost on the local cloud, against the database's own boot.

(a) raw: what booting PostgreSQL costs by hand on this machine — a fresh sparse file,
    mkfs.xfs, a loop device, a mount, initdb and `pg_ctl start -w` — several times;
(b) cellar: POST /instances through the API of `cellar serve --backend local` until the
    instance is ACTIVE (PostgreSQL accepting connections at its address), several times.
Prints medians and, last, one JSON object with `raw_s`, `cellar_s` and `ratio`
(cellar over raw). Target: ratio at most 1.5. Needs root.

    .venv/bin/python bench/provision.py [--runs 5] [--resource-manager orchestrator]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from cellar.cli.embedded import free_port, issue_token, serving
from cellar.config import settings_from_env
from cellar.localcloud.cleanup import teardown

PGBIN = Path("/usr/lib/postgresql/15/bin")


def sh(*argv: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def raw_boot(work: Path) -> float:
    """Volume + initdb + start, by hand; returns seconds to accepting connections."""
    image, mnt = work / "raw.img", work / "mnt"
    mnt.mkdir(exist_ok=True)
    work.chmod(0o755)  # mkdtemp makes it 0700: postgres must reach the mount below it
    port = free_port()
    t0 = time.perf_counter()
    with open(image, "wb") as f:
        f.truncate(1 << 30)
    sh("mkfs.xfs", "-q", "-f", str(image))
    loop = sh("losetup", "--find", "--show", str(image))
    try:
        sh("mount", loop, str(mnt))
        try:
            shutil.chown(mnt, "postgres", "postgres")
            data = mnt / "pgdata"
            sh(
                "runuser",
                "-u",
                "postgres",
                "--",
                str(PGBIN / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
            )
            sh(
                "runuser",
                "-u",
                "postgres",
                "--",
                str(PGBIN / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(mnt / "pg.log"),
                "-w",
                "-o",
                f"-c listen_addresses=127.0.0.1 -p {port} -k {mnt}",
                "start",
            )
            elapsed = time.perf_counter() - t0
            sh(
                "runuser",
                "-u",
                "postgres",
                "--",
                str(PGBIN / "pg_ctl"),
                "-D",
                str(data),
                "-m",
                "immediate",
                "-w",
                "stop",
            )
            return elapsed
        finally:
            sh("umount", str(mnt))
    finally:
        sh("losetup", "-d", loop)
        image.unlink()


def cellar_boots(runs: int, resource_manager: str) -> list[float]:
    state = Path(tempfile.mkdtemp(prefix="cellar-bench-"))
    state.chmod(0o755)  # volumes are mounted below it and the postgres user must reach them
    os.environ.setdefault("CELLAR_LOG_LEVEL", "WARNING")
    settings = settings_from_env(
        state_dir=state,
        backend="local",
        api_port=free_port(),
        resource_manager=resource_manager,
    )
    token = issue_token(settings, "bench")
    times: list[float] = []
    try:
        with (
            serving(settings) as served,
            httpx.Client(
                base_url=f"{served.url}/v1.0/bench", headers={"X-Auth-Token": token}, timeout=60
            ) as http,
        ):
            for i in range(runs):
                body = {"instance": {"name": f"bench{i}", "flavorRef": "1", "volume": {"size": 1}}}
                t0 = time.perf_counter()
                iid = http.post("/instances", json=body).raise_for_status().json()["instance"]["id"]
                while True:
                    inst = http.get(f"/instances/{iid}").raise_for_status().json()["instance"]
                    if inst["status"] == "ACTIVE":
                        break
                    if inst["status"] == "ERROR":
                        raise SystemExit(f"instance went to ERROR: {inst.get('fault')}")
                    time.sleep(0.02)
                times.append(time.perf_counter() - t0)
                http.delete(f"/instances/{iid}").raise_for_status()
                while http.get(f"/instances/{iid}").status_code != 404:
                    time.sleep(0.05)
    finally:
        # This run's own cloud: bridge, host firewall table and mounts go too.
        teardown(settings)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--resource-manager", default="native")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/provision.py needs root (loop devices, mounts, namespaces)")
    work = Path(tempfile.mkdtemp(prefix="cellar-raw-"))
    raw = [raw_boot(work) for _ in range(args.runs)]
    cellar = cellar_boots(args.runs, args.resource_manager)
    raw_s, cellar_s = statistics.median(raw), statistics.median(cellar)
    print(
        f"raw PostgreSQL boot on a fresh XFS loop volume: median {raw_s:.2f} s "
        f"({', '.join(f'{t:.2f}' for t in raw)})"
    )
    print(
        f"cellar POST /instances to ACTIVE (local cloud, {args.resource_manager}): "
        f"median {cellar_s:.2f} s "
        f"({', '.join(f'{t:.2f}' for t in cellar)})"
    )
    print(
        json.dumps(
            {
                "raw_s": round(raw_s, 3),
                "cellar_s": round(cellar_s, 3),
                "ratio": round(cellar_s / raw_s, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
