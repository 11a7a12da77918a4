"""`HeatStackService` through openstacksdk against a Heat-compatible API (`heat_api`): the
real HTTP calls, Heat's redirects and error bodies, Keystone's catalog; behind them the
embedded engine, so that statuses, rollbacks and signals are real ones."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from keystoneauth1.identity import v3
from keystoneauth1.session import Session

from cellar.orchestration.heat import HeatStackService
from cellar.orchestration.local.service import LocalStackService
from cellar.orchestration.stacks import (
    REBOOT,
    SignalNotSupported,
    Stack,
    StackError,
    StackNotFound,
)

from .heat_api import USERNAME, serve_heat
from .no_cloud import no_cloud_stacks

# openstacksdk's warnings about its own internals (`_compute_attributes`, influxdb).
pytestmark = [
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK50Warning"),
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK60Warning"),
]

TENANT, PASSWORD = "p1", "secret"

TEMPLATE: dict[str, Any] = {
    "heat_template_version": "2018-08-31",
    "description": "two parameters, a value, a test resource and a random string",
    "parameters": {
        "a": {"type": "string", "default": "a0"},
        "b": {"type": "string", "default": "b0"},
        "fail": {"type": "boolean", "default": False},
    },
    "resources": {
        "ab": {
            "type": "OS::Heat::Value",
            "properties": {"value": {"list_join": ["-", [{"get_param": "a"}, {"get_param": "b"}]]}},
        },
        "test": {
            "type": "OS::Heat::TestResource",
            "properties": {"value": {"get_param": "a"}, "fail": {"get_param": "fail"}},
        },
        "secret": {"type": "OS::Heat::RandomString", "properties": {"length": 8}},
    },
    "outputs": {
        "ab": {"value": {"get_attr": ["ab", "value"]}, "description": "a-b"},
        "test": {"value": {"get_attr": ["test", "output"]}},
        "secret": {"value": {"get_attr": ["secret", "value"]}},
    },
}

WAIT: dict[str, Any] = {
    "heat_template_version": "2018-08-31",
    "resources": {
        "handle": {"type": "OS::Heat::WaitConditionHandle"},
        "ready": {
            "type": "OS::Heat::WaitCondition",
            "properties": {"handle": {"get_resource": "handle"}, "count": 1, "timeout": 30},
        },
    },
    "outputs": {"data": {"value": {"get_attr": ["ready", "data"]}}},
}


@pytest.fixture
def local() -> Iterator[LocalStackService]:
    service = no_cloud_stacks(max_workers=2, poll_interval=0.005)
    yield service
    service.close()


@pytest.fixture
def url(local: LocalStackService) -> Iterator[str]:
    with serve_heat(local, tenant=TENANT, password=PASSWORD) as root:
        yield root


@pytest.fixture
def heat(url: str) -> HeatStackService:
    auth = v3.Password(
        auth_url=f"{url}/v3",
        username=USERNAME,
        password=PASSWORD,
        user_domain_id="default",
        project_id=TENANT,
    )
    return HeatStackService.from_cloud(session=Session(auth=auth))


def settled(heat: HeatStackService, stack_id: str, until: str | None = None) -> Stack:
    """The stack once its operation ended (or once it is `until`)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        stack = heat.get(stack_id)
        if (stack.status == until) if until else not stack.is_in_progress:
            return stack
        time.sleep(0.02)
    raise AssertionError(f"stack {stack_id} is still {heat.get(stack_id).status}")


def test_create_completes_with_outputs(heat: HeatStackService) -> None:
    stack_id = heat.create("s1", TEMPLATE, {"a": "a1", "b": "b1"})
    stack = settled(heat, stack_id)
    assert (stack.id, stack.name, stack.status) == (stack_id, "s1", "CREATE_COMPLETE")
    assert stack.status_reason == "Stack CREATE completed successfully"
    assert stack.outputs["ab"] == "a1-b1" and stack.outputs["test"] == "a1"
    assert len(stack.outputs["secret"]) == 8


def test_from_a_clouds_yaml_cloud(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clouds = {
        "clouds": {
            "standin": {
                "auth": {
                    "auth_url": f"{url}/v3",
                    "username": USERNAME,
                    "password": PASSWORD,
                    "project_id": TENANT,
                    "user_domain_id": "default",
                },
                "identity_api_version": 3,
                "region_name": "RegionOne",
            }
        }
    }
    (tmp_path / "clouds.yaml").write_text(json.dumps(clouds))  # JSON is YAML
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(tmp_path / "clouds.yaml"))
    heat = HeatStackService.from_cloud("standin")
    stack_id = heat.create("s1", TEMPLATE, {})
    assert settled(heat, stack_id).outputs["ab"] == "a0-b0"


def test_patch_update_keeps_the_parameters_not_given(
    heat: HeatStackService, local: LocalStackService
) -> None:
    stack_id = heat.create("s1", TEMPLATE, {"a": "a1", "b": "b1"})
    secret = settled(heat, stack_id).outputs["secret"]
    heat.update(stack_id, parameters={"a": "a2"})
    stack = settled(heat, stack_id)
    assert stack.status == "UPDATE_COMPLETE"
    # A PUT would have reset b to its default "b0".
    assert stack.outputs["ab"] == "a2-b1" and stack.outputs["test"] == "a2"
    assert stack.outputs["secret"] == secret
    assert local.engine.get_stack(stack_id).parameters == {"a": "a2", "b": "b1"}
    assert heat.template(stack_id) == TEMPLATE


def test_openstacksdks_put_update_would_reset_them(heat: HeatStackService) -> None:
    """Why `update` sends a PATCH: `update_stack` is a PUT, and Heat then resets the
    parameters left out to their defaults."""
    stack_id = heat.create("s1", TEMPLATE, {"a": "a1", "b": "b1"})
    settled(heat, stack_id)
    heat.conn.orchestration.update_stack(stack_id, template=TEMPLATE, parameters={"a": "a2"})
    assert settled(heat, stack_id).outputs["ab"] == "a2-b0"


def test_patch_update_with_a_template_keeps_the_parameters(heat: HeatStackService) -> None:
    stack_id = heat.create("s1", TEMPLATE, {"a": "a1", "b": "b1"})
    settled(heat, stack_id)
    new = json.loads(json.dumps(TEMPLATE))
    new["outputs"]["ba"] = {"value": {"list_join": ["+", [{"get_param": "b"}, {"get_param": "a"}]]}}
    heat.update(stack_id, template=new)
    stack = settled(heat, stack_id)
    assert stack.status == "UPDATE_COMPLETE"
    assert stack.outputs["ba"] == "b1+a1" and stack.outputs["ab"] == "a1-b1"
    assert heat.template(stack_id) == new


def test_a_failed_update_is_rolled_back(heat: HeatStackService) -> None:
    stack_id = heat.create("s1", TEMPLATE, {"a": "a1"})
    settled(heat, stack_id)
    heat.update(stack_id, parameters={"a": "a2", "fail": True})
    stack = settled(heat, stack_id, until="ROLLBACK_COMPLETE")
    assert stack.outputs["ab"] == "a1-b0"
    stack_events = [(e.action, e.status) for e in heat.events(stack_id) if e.resource_name == "s1"]
    assert stack_events[-3:] == [
        ("UPDATE", "FAILED"),
        ("ROLLBACK", "IN_PROGRESS"),
        ("ROLLBACK", "COMPLETE"),
    ]


def test_a_failed_update_without_rollback_stays_failed(heat: HeatStackService) -> None:
    stack_id = heat.create("s1", TEMPLATE, {}, disable_rollback=True)
    settled(heat, stack_id)
    heat.update(stack_id, parameters={"fail": True})
    stack = settled(heat, stack_id)
    assert stack.status == "UPDATE_FAILED"
    assert "Test Resource failed" in stack.status_reason
    failed = [r for r in heat.resources(stack_id) if r.status == "UPDATE_FAILED"]
    assert [r.name for r in failed] == ["test"]


def test_resources_and_events(heat: HeatStackService) -> None:
    stack_id = heat.create("s1", TEMPLATE, {})
    settled(heat, stack_id)
    resources = {r.name: r for r in heat.resources(stack_id)}
    assert {n: r.type for n, r in resources.items()} == {
        "ab": "OS::Heat::Value",
        "test": "OS::Heat::TestResource",
        "secret": "OS::Heat::RandomString",
    }
    assert all(r.status == "CREATE_COMPLETE" and r.physical_id for r in resources.values())
    events = heat.events(stack_id)
    # Oldest first: the stack's CREATE starts first and completes last.
    assert (events[0].resource_name, events[0].action, events[0].status) == (
        "s1",
        "CREATE",
        "IN_PROGRESS",
    )
    assert (events[-1].resource_name, events[-1].status) == ("s1", "COMPLETE")
    assert events[0].physical_id == stack_id and events[0].resource_type == ""
    assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)
    assert all(e.timestamp.tzinfo is not None for e in events)
    test_events = [
        (e.action, e.status, e.resource_type) for e in events if e.resource_name == "test"
    ]
    assert test_events == [
        ("CREATE", "IN_PROGRESS", "OS::Heat::TestResource"),
        ("CREATE", "COMPLETE", "OS::Heat::TestResource"),
    ]
    assert len({e.id for e in events}) == len(events)


def test_template_is_returned_as_stored(heat: HeatStackService) -> None:
    stack_id = heat.create("s1", TEMPLATE, {})
    settled(heat, stack_id)
    template = heat.template(stack_id)
    # HOT's `description` too (openstacksdk's StackTemplate would drop it).
    assert template == TEMPLATE and template["description"] == TEMPLATE["description"]


def test_a_signal_completes_a_wait_condition(heat: HeatStackService) -> None:
    stack_id = heat.create("w1", WAIT, {})
    deadline = time.monotonic() + 10
    while not any(
        r.name == "handle" and r.status == "CREATE_COMPLETE" for r in heat.resources(stack_id)
    ):
        assert time.monotonic() < deadline, "the handle was never created"
        time.sleep(0.02)
    waiting = heat.get(stack_id)
    # No half-resolved outputs while in progress (Heat shows them), as on the embedded engine.
    assert waiting.status == "CREATE_IN_PROGRESS" and waiting.outputs == {}
    heat.signal(stack_id, "handle", {"status": "SUCCESS", "reason": "db up", "data": "5432"})
    stack = settled(heat, stack_id)
    assert stack.status == "CREATE_COMPLETE"
    assert json.loads(stack.outputs["data"]) == {"1": "5432"}
    signals = [(e.resource_name, e.reason) for e in heat.events(stack_id) if e.action == "SIGNAL"]
    assert signals == [("handle", "db up")]


def test_a_reboot_signal_is_refused(heat: HeatStackService) -> None:
    stack_id = heat.create("s1", TEMPLATE, {})
    settled(heat, stack_id)
    with pytest.raises(SignalNotSupported, match="compute") as caught:
        heat.signal(stack_id, "test", {"action": REBOOT})
    assert caught.value.stack_id == stack_id
    assert not [e for e in heat.events(stack_id) if e.action == "SIGNAL"]


def test_signals_heat_refuses_are_stack_errors(heat: HeatStackService) -> None:
    stack_id = heat.create("s1", TEMPLATE, {})
    settled(heat, stack_id)
    # An unknown resource is Heat's 404, but the stack exists: not StackNotFound.
    with pytest.raises(StackError, match=r"The Resource \(nope\) could not be found") as caught:
        heat.signal(stack_id, "nope", {})
    assert not isinstance(caught.value, StackNotFound)
    with pytest.raises(StackError):  # a test resource takes no signal
        heat.signal(stack_id, "test", {"status": "SUCCESS"})


def test_delete_then_the_stack_is_not_found(heat: HeatStackService) -> None:
    stack_id = heat.create("s1", TEMPLATE, {})
    settled(heat, stack_id)
    found = heat.find("s1")  # Heat's lookup by name
    assert found is not None and found.id == stack_id
    assert heat.find("s2") is None
    heat.delete(stack_id)
    deadline = time.monotonic() + 10
    while True:
        try:
            stack = heat.get(stack_id)
        except StackNotFound:
            break
        assert stack.status.startswith("DELETE_"), stack.status
        assert time.monotonic() < deadline, "the stack was never deleted"
        time.sleep(0.02)
    assert heat.find("s1") is None
    for call in (
        lambda: heat.resources(stack_id),
        lambda: heat.events(stack_id),
        lambda: heat.template(stack_id),
        lambda: heat.update(stack_id, parameters={"a": "x"}),
        lambda: heat.delete(stack_id),
    ):
        with pytest.raises(StackNotFound):
            call()
    # Its name is free again, as in Heat.
    assert settled(heat, heat.create("s1", TEMPLATE, {})).status == "CREATE_COMPLETE"


def test_an_unknown_stack_is_not_found(heat: HeatStackService) -> None:
    unknown = "0d9ae8a5-5b5c-4f33-9d0b-4d6a1c6b2f10"
    for call in (
        lambda: heat.get(unknown),
        lambda: heat.update(unknown, parameters={"a": "x"}),
        lambda: heat.resources(unknown),
        lambda: heat.events(unknown),
        lambda: heat.template(unknown),
        lambda: heat.signal(unknown, "handle", {}),
        lambda: heat.delete(unknown),
    ):
        with pytest.raises(StackNotFound) as caught:
            call()
        assert caught.value.stack_id == unknown


def test_what_heat_refuses_is_a_stack_error_with_its_message(heat: HeatStackService) -> None:
    with pytest.raises(StackError, match="unknown resource type") as caught:
        heat.create("bad", {**TEMPLATE, "resources": {"x": {"type": "OS::Nope"}}}, {})
    assert not isinstance(caught.value, StackNotFound)
    slow = json.loads(json.dumps(TEMPLATE))
    slow["resources"]["test"]["properties"]["wait_secs"] = 1
    stack_id = heat.create("s1", slow, {})
    with pytest.raises(StackError, match=r"The Stack \(s1\) already exists"):
        heat.create("s1", TEMPLATE, {})
    with pytest.raises(StackError, match=r"already has an action \(CREATE\) in progress"):
        heat.update(stack_id, parameters={"a": "a2"})
    settled(heat, stack_id)
    with pytest.raises(StackError, match=r"parameters\.a: .* is not a string"):
        heat.update(stack_id, parameters={"a": {"not": "a string"}})


def test_the_stand_in_answers_as_heat(url: str, heat: HeatStackService) -> None:
    """Raw HTTP: the lookup redirect, Heat's error body, Keystone's token check."""
    stack_id = heat.create("s1", TEMPLATE, {})
    token = heat.conn.session.get_token()
    assert token is not None
    with httpx.Client(base_url=f"{url}/v1/{TENANT}", headers={"X-Auth-Token": token}) as client:
        found = client.get(f"/stacks/{stack_id}")
        assert found.status_code == 302
        assert found.headers["location"].endswith(f"/v1/{TENANT}/stacks/s1/{stack_id}")
        assert (
            client.get("/stacks/s1/events")
            .headers["location"]
            .endswith(f"/stacks/s1/{stack_id}/events")
        )
        missing = client.get("/stacks/nope")
        assert missing.status_code == 404
        assert missing.json()["error"] == {
            "message": "The Stack (nope) could not be found.",
            "traceback": None,
            "type": "EntityNotFound",
        }
        assert client.get(f"/stacks/other/{stack_id}").status_code == 404
    assert httpx.get(f"{url}/v1/{TENANT}/stacks/{stack_id}").status_code == 401
    other = httpx.get(f"{url}/v1/p2/stacks/{stack_id}", headers={"X-Auth-Token": token})
    assert other.status_code == 403
