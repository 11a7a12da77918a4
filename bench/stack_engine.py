"""Benchmark of the embedded stack engine: 500 resources created, updated, deleted.

The template mixes fan-out (one hub, many dependants) and chains of depth 10, over
OS::Heat::None, OS::Heat::Value and OS::Heat::RandomString. Those resources complete at
once, so the critical path costs nothing and the time measured is the engine's overhead.
The last line printed is one JSON object: create_s, update_s, delete_s.

    .venv/bin/python bench/stack_engine.py
"""

from __future__ import annotations

import json
import time
from typing import Any

from cellar.orchestration.local.engine import StackEngine
from cellar.orchestration.local.store import MemoryStore

TOTAL = 500
CHAIN_DEPTH = 10
CHAINS = 25  # 250 resources in chains, the rest fan out from the hub
TYPES = ("OS::Heat::None", "OS::Heat::Value", "OS::Heat::RandomString")


def resource(index: int, needs: str | None, version: int) -> dict[str, Any]:
    kind = TYPES[index % 3]
    changed = version and index % 10 == 0  # a tenth changes on update
    if kind == "OS::Heat::Value":
        value: Any = f"v{index}-{version if changed else 0}"
        if needs is not None:
            value = {"list_join": ["/", [value, {"get_resource": needs}]]}
        return {"type": kind, "properties": {"value": value}}
    if kind == "OS::Heat::RandomString":
        spec: dict[str, Any] = {"type": kind, "properties": {"length": 17 if changed else 16}}
    else:
        spec = {"type": kind, "properties": {"tag": f"t{index}-{version if changed else 0}"}}
    if needs is not None:
        spec["depends_on"] = needs
    return spec


def template(version: int) -> dict[str, Any]:
    resources: dict[str, Any] = {"hub": resource(1, None, version)}
    index = 2
    for chain in range(CHAINS):
        previous: str | None = "hub"
        for depth in range(CHAIN_DEPTH):
            name = f"c{chain}_{depth}"
            resources[name] = resource(index, previous, version)
            previous, index = name, index + 1
    while len(resources) < TOTAL:
        resources[f"f{index}"] = resource(index, "hub", version)
        index += 1
    return {"heat_template_version": "2018-08-31", "resources": resources}


def timed(engine: StackEngine, stack_id: str, start: float, expected: str) -> float:
    state = engine.wait(stack_id, timeout=120).state
    elapsed = time.perf_counter() - start
    if state != expected:
        raise SystemExit(f"stack ended {state}, expected {expected}")
    return elapsed


def critical_path(engine: StackEngine, stack_id: str) -> float:
    """The longest chain of resource durations (IN_PROGRESS to COMPLETE) of the last action."""
    spans: dict[str, float] = {}
    started: dict[str, float] = {}
    for event in engine.events(stack_id):
        key = f"{event.resource_name}/{event.physical_resource_id}"
        if event.status == "IN_PROGRESS":
            started[key] = event.timestamp.timestamp()
        elif event.status == "COMPLETE" and key in started:
            spans[event.resource_name] = event.timestamp.timestamp() - started[key]
    longest = spans.get("hub", 0.0) + max(
        sum(spans.get(f"c{c}_{d}", 0.0) for d in range(CHAIN_DEPTH)) for c in range(CHAINS)
    )
    return longest


def main() -> None:
    engine = StackEngine(MemoryStore(), max_workers=2)
    try:
        start = time.perf_counter()
        stack_id = engine.create_stack("bench", template(0))
        create_s = timed(engine, stack_id, start, "CREATE_COMPLETE")
        create_path = critical_path(engine, stack_id)
        start = time.perf_counter()
        engine.update_stack(stack_id, template(1))
        update_s = timed(engine, stack_id, start, "UPDATE_COMPLETE")
        start = time.perf_counter()
        engine.delete_stack(stack_id)
        delete_s = timed(engine, stack_id, start, "DELETE_COMPLETE")
        events = len(engine.events(stack_id))
    finally:
        engine.close()
    print(f"resources: {TOTAL} ({CHAINS} chains of {CHAIN_DEPTH}, the rest fan-out)")
    print(
        f"create: {create_s:.3f} s (in progress along the longest chain {create_path:.3f} s, "
        f"overhead over it {create_s - create_path:.3f} s, "
        f"{1000 * (create_s - create_path) / TOTAL:.2f} ms/resource)"
    )
    print(f"update: {update_s:.3f} s (a tenth changed)")
    print(f"delete: {delete_s:.3f} s")
    print(f"events: {events}")
    print(
        json.dumps(
            {
                "create_s": round(create_s, 4),
                "update_s": round(update_s, 4),
                "delete_s": round(delete_s, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
