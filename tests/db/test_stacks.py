"""The `StackStore` contract, on MemoryStore and on DbStackStore (SQLite and PostgreSQL),
and the explicit failure of the operations a dead engine left in progress."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cellar.db.engine import make_engine
from cellar.db.migrate import upgrade
from cellar.db.stacks import DbStackStore, fail_interrupted_stacks
from cellar.domain.errors import NotFound
from cellar.orchestration.local.store import MemoryStore, ResourceRecord, StackRecord, StackStore

STORES = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StackStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'cellar.sqlite'}"
    else:
        url = request.getfixturevalue("fresh_postgres_url")
    engine = make_engine(url)
    try:
        upgrade(engine)
        yield DbStackStore(engine)
    finally:
        engine.dispose()


def stack_record(stack_id: str = "s1", **values: object) -> StackRecord:
    fields: dict[str, object] = {
        "id": stack_id,
        "name": "test",
        "template": {"heat_template_version": "2018-08-31", "resources": {}},
        "parameters": {"p": "v", "n": [1, {"x": None}]},
        "action": "CREATE",
        "status": "IN_PROGRESS",
        **values,
    }
    return StackRecord(**fields)  # type: ignore[arg-type]


def resource_record(record_id: str, name: str, **values: object) -> ResourceRecord:
    fields: dict[str, object] = {
        "id": record_id,
        "stack_id": "s1",
        "name": name,
        "type": "OS::Heat::TestResource",
        "physical_id": "",
        "action": "INIT",
        "status": "COMPLETE",
        **values,
    }
    return ResourceRecord(**fields)  # type: ignore[arg-type]


def test_save_and_load_a_stack(store: StackStore) -> None:
    stack = stack_record(disable_rollback=True, status_reason="Stack CREATE started")
    store.save_stack(stack)
    assert store.load_stack("s1") == stack
    assert store.load_stack("s1").created_at.tzinfo is not None

    stack.status, stack.status_reason = "COMPLETE", "done"
    stack.parameters["p"] = "w"
    assert store.load_stack("s1").status == "IN_PROGRESS"  # the store kept its copy
    stack.updated_at = stack.updated_at + datetime.timedelta(seconds=1)
    store.save_stack(stack)
    assert store.load_stack("s1") == stack
    assert [s.id for s in store.list_stacks()] == ["s1"]


def test_list_stacks(store: StackStore) -> None:
    assert store.list_stacks() == []
    store.save_stack(stack_record("s1"))
    store.save_stack(stack_record("s2", name="other"))
    assert sorted(s.id for s in store.list_stacks()) == ["s1", "s2"]


def test_find_stacks_by_name_oldest_first(store: StackStore) -> None:
    early = stack_record("s1", name="db")
    late = stack_record("s3", name="db")
    late.created_at = early.created_at + datetime.timedelta(seconds=5)
    for stack in (late, stack_record("s2", name="other"), early):
        store.save_stack(stack)
    assert [s.id for s in store.find_stacks("db")] == ["s1", "s3"]
    assert store.find_stacks("nothing") == []


def test_unknown_stack_is_not_found(store: StackStore) -> None:
    with pytest.raises(NotFound):
        store.load_stack("nope")
    assert store.load_resources("nope") == []
    assert store.load_events("nope") == []


def test_resources_save_load_and_delete(store: StackStore) -> None:
    store.save_stack(stack_record())
    store.save_stack(stack_record("s2"))
    a = resource_record("r1", "a", properties={"value": "x"}, data={"k": [1, 2]})
    store.save_resource(a)
    # A replacement: the same name twice, the old one no longer current.
    old = resource_record("r2", "b", current=False, physical_id="p-old", requires=["a"])
    new = resource_record("r3", "b", physical_id="p-new", requires=["a"])
    store.save_resource(old)
    store.save_resource(new)
    store.save_resource(resource_record("r4", "a", stack_id="s2"))

    loaded = {r.id: r for r in store.load_resources("s1")}
    assert loaded == {"r1": a, "r2": old, "r3": new}

    a.action, a.status, a.physical_id = "CREATE", "COMPLETE", "p-a"
    a.data["k"].append(3)
    store.save_resource(a)
    assert {r.id: r for r in store.load_resources("s1")}["r1"] == a

    store.delete_resource("s1", "r2")
    store.delete_resource("s1", "r2")  # already gone: nothing happens
    store.delete_resource("s1", "r4")  # another stack's record: untouched
    assert sorted(r.id for r in store.load_resources("s1")) == ["r1", "r3"]
    assert [r.id for r in store.load_resources("s2")] == ["r4"]


def test_events_in_order(store: StackStore) -> None:
    store.save_stack(stack_record())
    store.save_stack(stack_record("s2"))
    first = store.add_event("s1", "test", "s1", "CREATE", "IN_PROGRESS", "Stack CREATE started")
    store.add_event("s2", "test", "s2", "CREATE", "IN_PROGRESS", "other")
    second = store.add_event("s1", "a", "p-a", "CREATE", "IN_PROGRESS", "state changed")
    third = store.add_event("s1", "a", "p-a", "CREATE", "COMPLETE", "state changed")
    assert first.id < second.id < third.id
    assert first.timestamp <= second.timestamp <= third.timestamp
    assert first.timestamp.tzinfo is not None
    assert store.load_events("s1") == [first, second, third]
    assert [e.reason for e in store.load_events("s2")] == ["other"]


def test_concurrent_writers(store: StackStore) -> None:
    store.save_stack(stack_record())
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                record = resource_record(f"r{n}", f"res{n}", physical_id=f"p{n}-{i}")
                store.save_resource(record)
                store.add_event("s1", record.name, record.physical_id, "CREATE", "COMPLETE", "")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(r.physical_id for r in store.load_resources("s1")) == [
        f"p{n}-9" for n in range(4)
    ]
    events = store.load_events("s1")
    assert len(events) == 40
    assert [e.id for e in events] == sorted(e.id for e in events)


def test_interrupted_operations_are_failed_explicitly(store: StackStore) -> None:
    store.save_stack(stack_record("s1", action="UPDATE"))
    store.save_stack(stack_record("s2", status="COMPLETE"))
    store.save_resource(resource_record("r1", "a", action="UPDATE", status="IN_PROGRESS"))
    store.save_resource(resource_record("r2", "b", action="CREATE", status="COMPLETE"))

    assert fail_interrupted_stacks(store) == ["s1"]

    stack = store.load_stack("s1")
    assert stack.state == "UPDATE_FAILED"
    assert stack.status_reason == "Engine went down during stack UPDATE"  # Heat's words
    went_down = "Engine went down during resource UPDATE"
    assert store.load_stack("s2").state == "CREATE_COMPLETE"
    states = {r.name: (r.state, r.status_reason) for r in store.load_resources("s1")}
    assert states == {"a": ("UPDATE_FAILED", went_down), "b": ("CREATE_COMPLETE", "")}
    assert [(e.resource_name, e.action, e.status, e.reason) for e in store.load_events("s1")] == [
        ("a", "UPDATE", "FAILED", went_down),
        ("test", "UPDATE", "FAILED", stack.status_reason),
    ]
    assert fail_interrupted_stacks(store) == []  # nothing left in progress
