"""The local engine on `DbStackStore` (SQLite and PostgreSQL): the same results as on
`MemoryStore`, and an operation a dead engine left in progress is failed on restart."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from cellar.db.engine import make_engine
from cellar.db.migrate import upgrade
from cellar.db.stacks import DbStackStore, fail_interrupted_stacks
from cellar.orchestration.local.engine import StackEngine
from cellar.orchestration.local.service import LocalStackService
from cellar.orchestration.local.store import (
    EventRecord,
    MemoryStore,
    ResourceRecord,
    StackRecord,
    StackStore,
    now,
)
from cellar.orchestration.local.template import HIDDEN, parse_template

from .no_cloud import no_cloud_stacks

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Engine]]:
    """Makes engines on one migrated database (a new one is a process restarting)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'cellar.sqlite'}"
    else:
        url = request.getfixturevalue("fresh_postgres_url")
    made: list[Engine] = []

    def connect() -> Engine:
        made.append(make_engine(url))
        return made[-1]

    upgrade(connect())
    try:
        yield connect
    finally:
        for engine in made:
            engine.dispose()


def hot(resources: dict[str, Any], **sections: Any) -> dict[str, Any]:
    return {"heat_template_version": "2018-08-31", "resources": resources, **sections}


def value(v: Any) -> dict[str, Any]:
    return {"type": "OS::Heat::Value", "properties": {"value": v}}


def test_resource(**properties: Any) -> dict[str, Any]:
    return {"type": "OS::Heat::TestResource", "properties": properties}


test_resource.__test__ = False  # type: ignore[attr-defined]

FIRST = hot(
    {
        "base": value({"get_param": "p"}),
        "mid": test_resource(value={"get_attr": ["base", "value"]}),
        "top": test_resource(value={"list_join": ["-", [{"get_attr": ["mid", "output"]}, "t"]]}),
        "gone": test_resource(value="removed by the update"),
    },
    parameters={"p": {"type": "string", "default": "one"}},
    outputs={"out": {"value": {"get_attr": ["top", "output"]}}},
)
SECOND = hot(
    {
        "base": value({"get_param": "p"}),
        "mid": test_resource(value={"get_attr": ["base", "value"]}, update_replace=True),
        "top": test_resource(value={"list_join": ["-", [{"get_attr": ["mid", "output"]}, "t"]]}),
        "new": value(42),
    },
    parameters={"p": {"type": "string", "default": "one"}},
    outputs={"out": {"value": {"get_attr": ["top", "output"]}}},
)


def scenario(engine: StackEngine) -> list[Any]:
    """Create, update (in place, replace, add, remove) and delete; what can be compared."""
    seen: list[Any] = []

    def snapshot(stack_id: str) -> None:
        stack = engine.wait(stack_id, timeout=20)
        resources = sorted(
            (r.name, r.type, r.state, r.current, r.properties, r.requires)
            for r in engine.resources(stack_id)
        )
        per_resource: dict[str, list[tuple[str, str]]] = {}
        for event in engine.events(stack_id):
            per_resource.setdefault(event.resource_name, []).append((event.action, event.status))
        seen.append(
            (
                stack.state,
                stack.status_reason,
                stack.parameters,
                resources,
                per_resource,
                engine.outputs(stack_id) if stack.action != "DELETE" else None,
            )
        )

    stack_id = engine.create_stack("test", FIRST, {"p": "two"})
    snapshot(stack_id)
    before = {r.name: r.physical_id for r in engine.resources(stack_id)}
    engine.update_stack(stack_id, SECOND, {"p": "three"})
    snapshot(stack_id)
    after = {r.name: r.physical_id for r in engine.resources(stack_id)}
    seen.append(
        sorted(name for name in before.keys() & after.keys() if before[name] == after[name])
    )
    engine.update_stack(stack_id, parameters={"p": "four"})
    snapshot(stack_id)
    engine.delete_stack(stack_id)
    snapshot(stack_id)
    seen.append(len(engine.store.load_events(stack_id)))
    return seen


def test_same_results_as_in_memory(db: Callable[[], Engine]) -> None:
    results = []
    for store in (MemoryStore(), DbStackStore(db())):
        engine = StackEngine(store, max_workers=2, poll_interval=0.002)
        try:
            results.append(scenario(engine))
        finally:
            engine.close()
    on_memory, on_db = results
    assert on_db == on_memory
    states = [step[0] for step in on_db[:2] + on_db[3:5]]
    assert states == ["CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE"]
    assert on_db[0][5]["out"]["value"] == "two-t"
    assert on_db[1][5]["out"]["value"] == "three-t"
    assert on_db[2] == ["base", "top"]  # updated in place; mid was replaced
    assert on_db[4][3] == []  # nothing left after the delete


class Crashing:
    """A store whose process dies at `crash()`: nothing written after it reaches the store."""

    def __init__(self, store: StackStore) -> None:
        self.store = store
        self.dead = threading.Event()

    def crash(self) -> None:
        self.dead.set()

    def save_stack(self, stack: StackRecord) -> None:
        if not self.dead.is_set():
            self.store.save_stack(stack)

    def load_stack(self, stack_id: str) -> StackRecord:
        return self.store.load_stack(stack_id)

    def list_stacks(self) -> list[StackRecord]:
        return self.store.list_stacks()

    def find_stacks(self, name: str) -> list[StackRecord]:
        return self.store.find_stacks(name)

    def save_resource(self, resource: ResourceRecord) -> None:
        if not self.dead.is_set():
            self.store.save_resource(resource)

    def delete_resource(self, stack_id: str, record_id: str) -> None:
        if not self.dead.is_set():
            self.store.delete_resource(stack_id, record_id)

    def load_resources(self, stack_id: str) -> list[ResourceRecord]:
        return self.store.load_resources(stack_id)

    def add_event(
        self,
        stack_id: str,
        resource_name: str,
        physical_resource_id: str,
        action: str,
        status: str,
        reason: str,
    ) -> EventRecord:
        args = (stack_id, resource_name, physical_resource_id, action, status, reason)
        if self.dead.is_set():
            return EventRecord(0, *args, now())
        return self.store.add_event(*args)

    def load_events(self, stack_id: str) -> list[EventRecord]:
        return self.store.load_events(stack_id)


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_restart_fails_the_interrupted_operation(db: Callable[[], Engine]) -> None:
    crashing = Crashing(DbStackStore(db()))
    first = StackEngine(crashing, max_workers=2, poll_interval=0.002)
    template = hot({"fast": value(1), "slow": test_resource(action_wait_secs={"create": 30})})
    stack_id = first.create_stack("test", template)

    def slow_started() -> bool:
        states = {r.name: r.state for r in crashing.load_resources(stack_id)}
        return states == {"fast": "CREATE_COMPLETE", "slow": "CREATE_IN_PROGRESS"}

    wait_for(slow_started)
    crashing.crash()
    first.close()  # its last writes are lost, as a killed process's would be
    assert crashing.load_stack(stack_id).state == "CREATE_IN_PROGRESS"

    store = DbStackStore(db())  # a new process on the same database
    assert fail_interrupted_stacks(store) == [stack_id]
    second = StackEngine(store, max_workers=2, poll_interval=0.002)
    try:
        stack = second.get_stack(stack_id)
        assert (stack.state, stack.status_reason) == (
            "CREATE_FAILED",
            "Engine went down during stack CREATE",
        )
        states = {r.name: (r.state, r.status_reason) for r in second.resources(stack_id)}
        assert states == {
            "fast": ("CREATE_COMPLETE", "state changed"),
            "slow": ("CREATE_FAILED", "Engine went down during resource CREATE"),
        }
        assert [(e.resource_name, e.status) for e in second.events(stack_id)[-2:]] == [
            ("slow", "FAILED"),
            ("test", "FAILED"),
        ]
        # The failed stack is usable again: an update replaces the failed resource.
        fixed = hot({"fast": value(1), "slow": test_resource()})
        second.update_stack(stack_id, fixed)
        assert second.wait(stack_id, timeout=10).state == "UPDATE_COMPLETE"
        assert {r.name: r.state for r in second.resources(stack_id)} == {
            "fast": "CREATE_COMPLETE",
            "slow": "CREATE_COMPLETE",
        }
        second.delete_stack(stack_id)
        assert second.wait(stack_id, timeout=10).state == "DELETE_COMPLETE"
        assert second.resources(stack_id) == []
    finally:
        second.close()


def test_a_stopped_service_leaves_its_cancelled_operation_to_be_retried(
    db: Callable[[], Engine],
) -> None:
    """A task manager stopping (not dying) closes its engine: what it cancels ends with
    Heat's "engine went down" reason, which the next one retries by an update."""

    def build() -> LocalStackService:
        return no_cloud_stacks(store=DbStackStore(db()), poll_interval=0.005)

    first = build()
    template = hot({"fast": value(1), "slow": test_resource(action_wait_secs={"create": 30})})
    stack_id = first.create("test", template, {})
    wait_for(lambda: first.get(stack_id).status == "CREATE_IN_PROGRESS")
    wait_for(
        lambda: (
            {r.name: r.status for r in first.resources(stack_id)}.get("slow")
            == "CREATE_IN_PROGRESS"
        )
    )
    first.close()

    second = build()
    try:
        stack = second.get(stack_id)
        assert stack.status == "CREATE_FAILED" and stack.is_interrupted
        assert stack.status_reason == "Engine went down during stack CREATE"
        assert not second.take_over(stack_id)  # nothing is left IN_PROGRESS
        second.update(stack_id, template=hot({"fast": value(1), "slow": test_resource()}))
        wait_for(lambda: second.get(stack_id).status == "UPDATE_COMPLETE")
    finally:
        second.close()


def test_a_hidden_parameter_is_kept_sealed_and_shown_masked(
    db: Callable[[], Engine], tmp_path: Path
) -> None:
    """As Heat with `encrypt_parameters_and_properties`: a hidden parameter's value, and
    the resolved properties it ends up in, are stored sealed with the key kept outside
    the database; the engine still resolves it, and what an operator is shown masks it."""
    secret = "guest-secret-9c2e41"
    key = tmp_path / "secret.key"
    template = hot(
        {"server": test_resource(value={"list_join": ["", ["{secret: ", {"get_param": "s"}]]})},
        parameters={
            "s": {"type": "string", "hidden": True, "default": ""},
            "plain": {"type": "string", "default": "x"},
        },
        outputs={"out": {"value": {"get_attr": ["server", "output"]}}},
    )
    engine = db()
    service = no_cloud_stacks(store=DbStackStore(engine, secret_key_path=key), poll_interval=0.005)
    try:
        stack_id = service.create("test", template, {"s": secret, "plain": "shown"})
        wait_for(lambda: service.get(stack_id).status == "CREATE_COMPLETE")
        assert service.get(stack_id).outputs["out"] == "{secret: " + secret  # resolved
        reopened = DbStackStore(db(), secret_key_path=key)  # another process, same key
        record = reopened.load_stack(stack_id)
        assert record.parameters == {"s": secret, "plain": "shown"}
        assert parse_template(record.template).shown_parameters(record.parameters) == {
            "s": HIDDEN,
            "plain": "shown",
        }
        (server,) = reopened.load_resources(stack_id)
        assert secret in json.dumps(server.properties)
        assert all(secret not in e.reason for e in service.events(stack_id))
    finally:
        service.close()
    with engine.connect() as conn:
        stored = [
            json.dumps(
                [list(row) for row in conn.execute(text(f"SELECT * FROM {table}"))], default=str
            )
            for table in ("stacks", "stack_resources", "stack_events")
        ]
    assert all(secret not in dump for dump in stored)
    assert "shown" in stored[0]  # a parameter that is not hidden is kept as given
