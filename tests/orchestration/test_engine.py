"""The local engine against Heat's functional tests (heat_integrationtests/functional):
TestResource stacks created, updated and deleted, asserting states, ids and events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cellar.domain.errors import Conflict
from cellar.orchestration.local.engine import StackEngine
from cellar.orchestration.local.resources import TestResource, default_registry
from cellar.orchestration.local.store import EventRecord, MemoryStore, ResourceRecord
from cellar.orchestration.local.template import TemplateError


def hot(resources: dict[str, Any], **sections: Any) -> dict[str, Any]:
    return {"heat_template_version": "2018-08-31", "resources": resources, **sections}


def test_resource(**properties: Any) -> dict[str, Any]:
    return {"type": "OS::Heat::TestResource", "properties": properties}


test_resource.__test__ = False  # type: ignore[attr-defined]


def by_name(engine: StackEngine, stack_id: str) -> dict[str, ResourceRecord]:
    records = engine.resources(stack_id)
    assert len({r.name for r in records}) == len(records)
    return {r.name: r for r in records}


def create(engine: StackEngine, template: dict[str, Any], **kwargs: Any) -> str:
    stack_id = engine.create_stack("test", template, **kwargs)
    engine.wait(stack_id, timeout=10)
    return stack_id


def resource_events(engine: StackEngine, stack_id: str, name: str) -> list[EventRecord]:
    return [e for e in engine.events(stack_id) if e.resource_name == name]


def test_create_then_outputs(engine: StackEngine) -> None:
    template = hot(
        {
            "rand": {"type": "OS::Heat::RandomString", "properties": {"length": 12}},
            "val": {"type": "OS::Heat::Value", "properties": {"value": {"get_param": "p"}}},
            "res": test_resource(value={"list_join": ["-", [{"get_attr": ["val", "value"]}, "x"]]}),
        },
        parameters={"p": {"type": "string", "default": "hello"}},
        outputs={
            "out": {"value": {"get_attr": ["res", "output"]}},
            "ref": {"value": {"get_resource": "res"}},
            "rand": {"value": {"get_attr": ["rand", "value"]}},
        },
    )
    stack_id = create(engine, template)
    stack = engine.get_stack(stack_id)
    assert stack.state == "CREATE_COMPLETE"
    assert stack.status_reason == "Stack CREATE completed successfully"
    records = by_name(engine, stack_id)
    assert {r.state for r in records.values()} == {"CREATE_COMPLETE"}
    outputs = engine.outputs(stack_id)
    assert outputs["out"]["value"] == "hello-x"
    assert outputs["ref"]["value"] == records["res"].physical_id
    assert len(outputs["rand"]["value"]) == 12
    events = resource_events(engine, stack_id, "res")
    assert [(e.action, e.status) for e in events] == [
        ("CREATE", "IN_PROGRESS"),
        ("CREATE", "COMPLETE"),
    ]
    assert events[0].physical_resource_id == records["res"].physical_id


def test_update_in_place_keeps_physical_id_and_replace_changes_it(engine: StackEngine) -> None:
    stack_id = create(
        engine,
        hot(
            {
                "inplace": test_resource(value="a"),
                "replaced": test_resource(value="a"),
                "rand": {"type": "OS::Heat::RandomString"},
            }
        ),
    )
    before = by_name(engine, stack_id)
    rand_value = engine.outputs(stack_id)  # no outputs: resolving nothing is fine
    assert rand_value == {}
    engine.update_stack(
        stack_id,
        hot(
            {
                "inplace": test_resource(value="b"),
                "replaced": test_resource(value="b", update_replace=True),
                "rand": {"type": "OS::Heat::RandomString"},
            }
        ),
    )
    stack = engine.wait(stack_id, timeout=10)
    assert stack.state == "UPDATE_COMPLETE"
    after = by_name(engine, stack_id)
    assert after["inplace"].physical_id == before["inplace"].physical_id
    assert after["inplace"].state == "UPDATE_COMPLETE"
    assert after["inplace"].properties["value"] == "b"
    assert after["replaced"].physical_id != before["replaced"].physical_id
    assert after["replaced"].state == "CREATE_COMPLETE"
    assert after["rand"].state == "CREATE_COMPLETE"  # unchanged: untouched
    assert after["rand"].data == before["rand"].data
    # create before delete: the new one completes before the old one is deleted
    events = [
        (e.physical_resource_id, e.action, e.status)
        for e in resource_events(engine, stack_id, "replaced")
    ]
    created = events.index((after["replaced"].physical_id, "CREATE", "COMPLETE"))
    deleted = events.index((before["replaced"].physical_id, "DELETE", "IN_PROGRESS"))
    assert created < deleted


def test_random_string_regenerated_only_on_replace(engine: StackEngine) -> None:
    template = hot(
        {"rand": {"type": "OS::Heat::RandomString", "properties": {"length": 8}}},
        outputs={"v": {"value": {"get_attr": ["rand", "value"]}}},
    )
    stack_id = create(engine, template)
    first = engine.outputs(stack_id)["v"]["value"]
    engine.update_stack(stack_id, template)
    engine.wait(stack_id)
    assert engine.outputs(stack_id)["v"]["value"] == first
    template["resources"]["rand"]["properties"]["length"] = 9
    engine.update_stack(stack_id, template)
    assert engine.wait(stack_id).state == "UPDATE_COMPLETE"
    second = engine.outputs(stack_id)["v"]["value"]
    assert len(second) == 9 and second != first


def test_create_failure_rolls_back(engine: StackEngine) -> None:
    template = hot({"ok": test_resource(), "bad": test_resource(fail=True, wait_secs=0.05)})
    stack_id = create(engine, template)
    stack = engine.get_stack(stack_id)
    assert stack.state == "ROLLBACK_COMPLETE"
    assert engine.resources(stack_id) == []
    reasons = [
        e.reason
        for e in engine.events(stack_id)
        if e.resource_name == "test" and e.status == "FAILED"
    ]
    assert reasons == [
        "Resource CREATE failed: ResourceFailure: resources.bad: Test Resource failed bad"
    ]
    ok_events = [(e.action, e.status) for e in resource_events(engine, stack_id, "ok")]
    assert ok_events[-1] == ("DELETE", "COMPLETE")


def test_create_failure_without_rollback(engine: StackEngine) -> None:
    template = hot(
        {
            "ok": test_resource(),
            "bad": test_resource(fail=True),
            "after": {"type": "OS::Heat::None", "depends_on": "bad"},
        }
    )
    stack_id = create(engine, template, disable_rollback=True)
    stack = engine.get_stack(stack_id)
    assert stack.state == "CREATE_FAILED"
    assert "Test Resource failed bad" in stack.status_reason
    records = by_name(engine, stack_id)
    assert records["ok"].state == "CREATE_COMPLETE"
    assert records["bad"].state == "CREATE_FAILED"
    assert records["after"].state == "INIT_COMPLETE"
    engine.delete_stack(stack_id)
    assert engine.wait(stack_id).state == "DELETE_COMPLETE"
    assert engine.resources(stack_id) == []


def test_fail_on_update_without_rollback(engine: StackEngine) -> None:
    stack_id = create(engine, hot({"r": test_resource(value="a")}), disable_rollback=True)
    engine.update_stack(stack_id, hot({"r": test_resource(value="b", fail=True)}))
    stack = engine.wait(stack_id)
    assert stack.state == "UPDATE_FAILED"
    assert by_name(engine, stack_id)["r"].state == "UPDATE_FAILED"
    # a later good update replaces the failed resource (needs_replace_failed)
    old_id = by_name(engine, stack_id)["r"].physical_id
    engine.update_stack(stack_id, hot({"r": test_resource(value="c")}))
    assert engine.wait(stack_id).state == "UPDATE_COMPLETE"
    assert by_name(engine, stack_id)["r"].physical_id != old_id


def test_cycle_rejected_before_anything_is_created(engine: StackEngine) -> None:
    template = hot(
        {
            "a": test_resource(value={"get_attr": ["b", "output"]}),
            "b": {"type": "OS::Heat::None", "depends_on": "a"},
        }
    )
    with pytest.raises(TemplateError, match="circular dependency between 'a', 'b'"):
        engine.create_stack("test", template)
    assert engine.store.list_stacks() == []


def test_parallel_independent_and_ordered_dependent(engine: StackEngine) -> None:
    wait = 0.3
    template = hot(
        {
            "a": test_resource(wait_secs=wait),
            "b": test_resource(wait_secs=wait),
            "c": test_resource(value={"get_attr": ["a", "output"]}, wait_secs=0.05),
            "d": {"type": "OS::Heat::None", "depends_on": ["b", "c"]},
        }
    )
    stack_id = create(engine, template)
    assert engine.get_stack(stack_id).state == "CREATE_COMPLETE"

    def span(name: str) -> tuple[float, float]:
        events = resource_events(engine, stack_id, name)
        start = next(e.timestamp for e in events if e.status == "IN_PROGRESS")
        end = next(e.timestamp for e in events if e.status == "COMPLETE")
        return start.timestamp(), end.timestamp()

    a, b, c, d = span("a"), span("b"), span("c"), span("d")
    assert abs(a[0] - b[0]) < wait / 2  # a and b started together
    assert a[0] < b[1] and b[0] < a[1]  # and overlapped
    assert c[0] >= a[1]  # implicit dependency (get_attr)
    assert d[0] >= max(b[1], c[1])  # explicit dependencies
    total = d[1] - a[0]
    assert total < 2 * wait  # a and b did not run one after the other


def test_patch_keeps_parameters(engine: StackEngine) -> None:
    template = hot(
        {
            "v": {
                "type": "OS::Heat::Value",
                "properties": {
                    "value": {"list_join": [":", [{"get_param": "x"}, {"get_param": "y"}]]}
                },
            }
        },
        parameters={
            "x": {"type": "string", "default": "dx"},
            "y": {"type": "string", "default": "dy"},
        },
        outputs={"v": {"value": {"get_attr": ["v", "value"]}}},
    )
    stack_id = create(engine, template, parameters={"x": "one", "y": "two"})
    assert engine.outputs(stack_id)["v"]["value"] == "one:two"
    engine.update_stack(stack_id, parameters={"y": "three"})
    assert engine.wait(stack_id).state == "UPDATE_COMPLETE"
    assert engine.outputs(stack_id)["v"]["value"] == "one:three"
    assert engine.get_stack(stack_id).parameters == {"x": "one", "y": "three"}


def test_removed_resource_deleted_after_the_rest(engine: StackEngine) -> None:
    stack_id = create(engine, hot({"keep": test_resource(), "gone": test_resource()}))
    gone_id = by_name(engine, stack_id)["gone"].physical_id
    engine.update_stack(stack_id, hot({"keep": test_resource(), "new": {"type": "OS::Heat::None"}}))
    assert engine.wait(stack_id).state == "UPDATE_COMPLETE"
    assert set(by_name(engine, stack_id)) == {"keep", "new"}
    events = engine.events(stack_id)
    deleted = [e for e in events if e.resource_name == "gone" and e.action == "DELETE"]
    assert deleted[-1].status == "COMPLETE" and deleted[-1].physical_resource_id == gone_id
    created = next(e for e in events if e.resource_name == "new" and e.status == "COMPLETE")
    assert created.id < deleted[0].id


def test_delete_in_reverse_order_leaves_nothing(engine: StackEngine) -> None:
    template = hot(
        {
            "base": test_resource(wait_secs=0.05),
            "mid": test_resource(value={"get_resource": "base"}),
            "top": {"type": "OS::Heat::None", "depends_on": "mid"},
        }
    )
    stack_id = create(engine, template)
    engine.delete_stack(stack_id)
    stack = engine.wait(stack_id)
    assert stack.state == "DELETE_COMPLETE"
    assert engine.resources(stack_id) == []
    order = [
        e.resource_name
        for e in engine.events(stack_id)
        if e.action == "DELETE" and e.status == "COMPLETE" and e.resource_name != "test"
    ]
    assert order == ["top", "mid", "base"]


def test_delete_cancels_a_running_create(engine: StackEngine) -> None:
    stack_id = engine.create_stack(
        "test", hot({"slow": test_resource(action_wait_secs={"create": 30})})
    )
    engine.delete_stack(stack_id)
    assert engine.wait(stack_id, timeout=5).state == "DELETE_COMPLETE"
    assert engine.resources(stack_id) == []


def test_update_while_in_progress_is_a_conflict(engine: StackEngine) -> None:
    stack_id = engine.create_stack("test", hot({"slow": test_resource(wait_secs=0.3)}))
    with pytest.raises(Conflict):
        engine.update_stack(stack_id)
    assert engine.wait(stack_id).state == "CREATE_COMPLETE"


def test_none_is_never_updated(engine: StackEngine) -> None:
    stack_id = create(engine, hot({"n": {"type": "OS::Heat::None", "properties": {"a": 1}}}))
    before = by_name(engine, stack_id)["n"]
    engine.update_stack(stack_id, hot({"n": {"type": "OS::Heat::None", "properties": {"a": 2}}}))
    assert engine.wait(stack_id).state == "UPDATE_COMPLETE"
    after = by_name(engine, stack_id)["n"]
    assert (after.physical_id, after.state) == (before.physical_id, "CREATE_COMPLETE")


def test_bad_stack_name(engine: StackEngine) -> None:
    with pytest.raises(TemplateError, match=r"^name: invalid stack name"):
        engine.create_stack("1abc", hot({}))


def test_replacement_propagates_to_dependants(engine: StackEngine) -> None:
    def template(base_value: str) -> dict[str, Any]:
        return hot(
            {
                "base": test_resource(value=base_value, update_replace=True),
                "mid": test_resource(value={"get_resource": "base"}),
                "name": {
                    "type": "OS::Heat::Value",
                    "properties": {"value": {"get_param": "OS::stack_name"}},
                },
            },
            outputs={"all": {"value": {"get_attr": ["name"]}}},
        )

    stack_id = create(engine, template("a"))
    before = by_name(engine, stack_id)
    assert before["mid"].properties["value"] == before["base"].physical_id
    assert engine.outputs(stack_id)["all"]["value"] == {"value": "test"}
    engine.update_stack(stack_id, template("b"))
    assert engine.wait(stack_id).state == "UPDATE_COMPLETE"
    after = by_name(engine, stack_id)
    assert after["base"].physical_id != before["base"].physical_id
    assert after["mid"].physical_id == before["mid"].physical_id  # updated in place
    assert after["mid"].properties["value"] == after["base"].physical_id
    assert after["mid"].state == "UPDATE_COMPLETE"


# needs_replace_failed -------------------------------------------------------------------


class Durable(TestResource):
    """A TestResource whose physical resource survives a failed action, as a running
    server does: its plugin answers that it need not be replaced."""

    type_name = "Test::Durable"

    def needs_replace_failed(self) -> bool:
        return False


def fail_record(engine: StackEngine, stack_id: str, name: str, action: str) -> None:
    """The resource's record (and its stack) FAILED, as an interrupted action leaves them."""
    [record] = [r for r in engine.resources(stack_id) if r.name == name]
    record.action, record.status = action, "FAILED"
    engine.store.save_resource(record)
    stack = engine.get_stack(stack_id)
    stack.action, stack.status = action, "FAILED"
    engine.store.save_stack(stack)


@pytest.fixture
def durable_engine() -> Iterator[StackEngine]:
    registry = default_registry()
    registry.register(Durable)
    eng = StackEngine(MemoryStore(), max_workers=2, poll_interval=0.002, registry=registry)
    try:
        yield eng
    finally:
        eng.close()


def test_failed_resource_kept_when_its_plugin_says_so(durable_engine: StackEngine) -> None:
    engine = durable_engine
    template = hot({"kept": {"type": "Test::Durable"}, "replaced": test_resource()})
    stack_id = create(engine, template)
    before = by_name(engine, stack_id)
    fail_record(engine, stack_id, "kept", "UPDATE")
    fail_record(engine, stack_id, "replaced", "UPDATE")

    engine.update_stack(stack_id, template)
    assert engine.wait(stack_id).state == "UPDATE_COMPLETE"
    after = by_name(engine, stack_id)
    assert after["kept"].physical_id == before["kept"].physical_id
    assert after["kept"].state == "UPDATE_COMPLETE"
    assert "neither update nor replace" in after["kept"].status_reason
    assert after["replaced"].physical_id != before["replaced"].physical_id  # the default
    assert after["replaced"].state == "CREATE_COMPLETE"


def test_failed_resource_kept_is_updated_in_place(durable_engine: StackEngine) -> None:
    engine = durable_engine
    stack_id = create(engine, hot({"kept": {"type": "Test::Durable"}}))
    before = by_name(engine, stack_id)["kept"]
    fail_record(engine, stack_id, "kept", "CREATE")
    engine.update_stack(
        stack_id, hot({"kept": {"type": "Test::Durable", "properties": {"value": "new"}}})
    )
    assert engine.wait(stack_id).state == "UPDATE_COMPLETE"
    after = by_name(engine, stack_id)["kept"]
    assert (after.physical_id, after.state) == (before.physical_id, "UPDATE_COMPLETE")
    assert after.properties["value"] == "new"


# Update rollback (heat_integrationtests/functional/test_create_update.py) -----------------


def stack_states(engine: StackEngine, stack_id: str) -> list[str]:
    return [f"{e.action}_{e.status}" for e in resource_events(engine, stack_id, "test")]


def test_failed_update_rolls_back_to_the_old_value(engine: StackEngine) -> None:
    template = hot(
        {"r": test_resource(value="old")},
        outputs={"out": {"value": {"get_attr": ["r", "output"]}}},
    )
    stack_id = create(engine, template)
    engine.update_stack(stack_id, hot({"r": test_resource(value="new", fail=True)}))
    stack = engine.wait(stack_id)
    assert stack.state == "ROLLBACK_COMPLETE", stack.status_reason
    assert stack.status_reason == "Stack ROLLBACK completed successfully"
    assert stack_states(engine, stack_id)[-4:] == [
        "UPDATE_IN_PROGRESS",
        "UPDATE_FAILED",
        "ROLLBACK_IN_PROGRESS",
        "ROLLBACK_COMPLETE",
    ]
    failed = [e for e in resource_events(engine, stack_id, "test") if e.status == "FAILED"]
    assert "Test Resource failed r" in failed[0].reason
    assert engine.get_stack(stack_id).template == template
    assert engine.outputs(stack_id)["out"]["value"] == "old"
    [record] = engine.resources(stack_id)
    assert record.properties["value"] == "old"
    assert record.state == "CREATE_COMPLETE"  # the failed one replaced (needs_replace_failed)


def test_rollback_restores_replaced_and_deletes_added(engine: StackEngine) -> None:
    """Heat's test_stack_update_rollback, with a replacement: the resource replaced by the
    failed update gets its old physical resource back, the replacement and the resource
    the update added are deleted."""
    first = hot(
        {
            "base": test_resource(value="a"),
            "user": test_resource(value={"get_resource": "base"}),
        }
    )
    stack_id = create(engine, first)
    before = by_name(engine, stack_id)
    failing = hot(
        {
            "base": test_resource(value="b", update_replace=True),
            "user": test_resource(value={"get_resource": "base"}),
            "added": test_resource(),
            "bad": {
                "type": "OS::Heat::TestResource",
                "properties": {"fail": True},
                "depends_on": ["user", "added"],
            },
        }
    )
    engine.update_stack(stack_id, failing)
    stack = engine.wait(stack_id)
    assert stack.state == "ROLLBACK_COMPLETE", stack.status_reason
    after = by_name(engine, stack_id)
    assert set(after) == {"base", "user"}
    assert after["base"].physical_id == before["base"].physical_id
    assert after["base"].properties["value"] == "a"
    assert after["user"].physical_id == before["user"].physical_id
    assert after["user"].properties["value"] == before["base"].physical_id
    events = engine.events(stack_id)
    replacement = next(
        e.physical_resource_id
        for e in events
        if e.resource_name == "base"
        and e.action == "CREATE"
        and e.status == "COMPLETE"
        and e.physical_resource_id != before["base"].physical_id
    )
    deleted = {
        (e.resource_name, e.physical_resource_id)
        for e in events
        if e.action == "DELETE" and e.status == "COMPLETE"
    }
    assert ("base", replacement) in deleted
    assert any(name == "added" for name, _ in deleted)


def test_failed_update_with_rollback_disabled_stays_failed(engine: StackEngine) -> None:
    stack_id = create(engine, hot({"r": test_resource(value="old")}), disable_rollback=True)
    engine.update_stack(stack_id, hot({"r": test_resource(value="new", fail=True)}))
    stack = engine.wait(stack_id)
    assert stack.state == "UPDATE_FAILED"
    assert "ROLLBACK_IN_PROGRESS" not in stack_states(engine, stack_id)
    assert engine.get_stack(stack_id).template == hot({"r": test_resource(value="new", fail=True)})
