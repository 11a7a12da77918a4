"""Control-plane throughput: N instance creates through the API on the fake cloud (zero
latency) until all are ACTIVE, then N deletes.

Runs the real process tree (`cellar serve --backend fake`, SQLite). Prints creates per
second to ACTIVE, the API's p50/p99 latency for POST /instances, and, as the baseline
measured in the same run, the latency of `GET /` (an endpoint that touches no database)
so the ratio says what the create itself costs on this machine. Last line: one JSON
object. Target: at least 50 creates/s to ACTIVE on a 2-core machine.

    .venv/bin/python bench/control_plane.py [--count 200] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

from cellar.cli.embedded import free_port, issue_token, serving
from cellar.config import settings_from_env


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="cellar-bench-"))
    os.environ.setdefault("CELLAR_LOG_LEVEL", "WARNING")
    # CELLAR_* variables (workers, task managers) still apply; these are fixed.
    settings = settings_from_env(
        state_dir=state, backend="fake", api_port=free_port(), fake_latency_s=0.0
    )
    token = issue_token(settings, "bench")
    with serving(settings) as served:
        server, base = served.proc, served.url
        headers = {"X-Auth-Token": token}
        api = f"{base}/v1.0/bench"
        with httpx.Client(headers=headers, timeout=60) as http:
            # Baseline: the same client and server on an endpoint without a database.
            baseline = []
            for _ in range(min(args.count, 200)):
                t0 = time.perf_counter()
                http.get(base + "/").raise_for_status()
                baseline.append(time.perf_counter() - t0)

            body = {"instance": {"name": "b", "flavorRef": "1", "volume": {"size": 1}}}

            def create(i: int) -> tuple[str, float]:
                t0 = time.perf_counter()
                r = http.post(f"{api}/instances", json=body)
                r.raise_for_status()
                return r.json()["instance"]["id"], time.perf_counter() - t0

            start = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                results = list(pool.map(create, range(args.count)))
            posted = time.perf_counter() - start
            ids = {iid for iid, _ in results}
            latencies = [lat for _, lat in results]

            def statuses() -> dict[str, str]:
                found: dict[str, str] = {}
                params: dict[str, object] = {"limit": 100}
                while True:
                    r = http.get(f"{api}/instances", params=params)
                    r.raise_for_status()
                    page = r.json()["instances"]
                    found.update({i["id"]: i["status"] for i in page if i["id"] in ids})
                    if len(page) < 100:
                        return found
                    params["marker"] = page[-1]["id"]

            while True:
                seen = statuses()
                if any(s == "ERROR" for s in seen.values()):
                    raise SystemExit("an instance went to ERROR")
                if len(seen) == len(ids) and all(s == "ACTIVE" for s in seen.values()):
                    break
                time.sleep(0.25)  # polling costs the API CPU that the creates need
            active_s = time.perf_counter() - start

            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                list(
                    pool.map(lambda i: http.delete(f"{api}/instances/{i}").raise_for_status(), ids)
                )
            while statuses():
                time.sleep(0.25)
            deleted_s = time.perf_counter() - t0
        # Where the CPU went: the API process and each task manager, over the whole run.
        api_proc = psutil.Process(server.pid)
        cpu_api = sum(api_proc.cpu_times()[:2])
        cpu_tm = sum(sum(c.cpu_times()[:2]) for c in api_proc.children(recursive=True))

    p50_ms, p99_ms = pct(latencies, 0.50) * 1000, pct(latencies, 0.99) * 1000
    base_ms = statistics.median(baseline) * 1000
    figures = {
        "count": args.count,
        "concurrency": args.concurrency,
        "creates_per_s": round(args.count / active_s, 1),
        "deletes_per_s": round(args.count / deleted_s, 1),
        "post_phase_s": round(posted, 2),
        "p50_ms": round(p50_ms, 1),
        "p99_ms": round(p99_ms, 1),
        "baseline_get_p50_ms": round(base_ms, 2),
        "p50_over_baseline": round(p50_ms / base_ms, 1),
        "cpu_ms_per_instance_api": round(cpu_api * 1000 / args.count, 1),
        "cpu_ms_per_instance_taskmanager": round(cpu_tm * 1000 / args.count, 1),
    }
    print(
        f"{args.count} creates to ACTIVE in {active_s:.2f} s: "
        f"{figures['creates_per_s']} creates/s (target >= 50)"
    )
    print(
        f"POST /instances latency: p50 {p50_ms:.1f} ms, p99 {p99_ms:.1f} ms "
        f"(baseline GET / p50 {base_ms:.2f} ms, ratio {figures['p50_over_baseline']})"
    )
    print(f"{args.count} deletes in {deleted_s:.2f} s: {figures['deletes_per_s']} deletes/s")
    print(
        f"CPU per instance (create + delete, polling included): API "
        f"{figures['cpu_ms_per_instance_api']} ms, task managers "
        f"{figures['cpu_ms_per_instance_taskmanager']} ms"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
