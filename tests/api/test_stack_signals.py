"""Token signals through the API: an agent POSTs to its wait condition handle's endpoint
(the API, in this process) and the engine (a task manager's, here on the same database)
sees the signal at its next poll.

The engine runs on `DbStackStore` + `DbSignalStore`, as `cellar.taskmanager.stacks` builds
it; the template holds only a handle and its condition, so no cloud is involved.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from cellar.db.stacks import DbSignalStore, DbStackStore
from cellar.orchestration.local.service import LocalStackService, api_signal_url
from cellar.orchestration.stacks import Stack
from orchestration.no_cloud import WatchedSignals, no_cloud_stacks

TEMPLATE: dict[str, Any] = {
    "heat_template_version": "2018-08-31",
    "parameters": {"count": {"type": "number", "default": 1}},
    "resources": {
        "handle": {"type": "OS::Heat::WaitConditionHandle"},
        "ready": {
            "type": "OS::Heat::WaitCondition",
            "properties": {
                "handle": {"get_resource": "handle"},
                "count": {"get_param": "count"},
                "timeout": 30,
            },
        },
    },
    "outputs": {
        "endpoint": {"value": {"get_attr": ["handle", "endpoint"]}},
        "token": {"value": {"get_attr": ["handle", "token"]}},
        "data": {"value": {"get_attr": ["ready", "data"]}},
    },
}


@pytest.fixture
def signals(sessions: sessionmaker[Session]) -> WatchedSignals:
    return WatchedSignals(DbSignalStore(sessions))


@pytest.fixture
def stacks(sessions: sessionmaker[Session], signals: WatchedSignals) -> Iterator[LocalStackService]:
    service = no_cloud_stacks(
        signal_url=api_signal_url("http://control-plane:8779"),
        store=DbStackStore(sessions),
        signals=signals,
        poll_interval=0.02,
    )
    yield service
    service.close()


def _handle(stacks: LocalStackService, stack_id: str) -> tuple[str, str]:
    """The handle's endpoint path and token, once the engine made the handle."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for record in stacks.engine.resources(stack_id):
            if record.name == "handle" and record.state == "CREATE_COMPLETE":
                return urlsplit(record.data["endpoint"]).path, record.data["token"]
        time.sleep(0.02)
    raise AssertionError("the handle was never created")


def _settled(stacks: LocalStackService, stack_id: str, timeout: float = 10) -> Stack:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack = stacks.get(stack_id)
        if not stack.is_in_progress:
            return stack
        time.sleep(0.02)
    raise AssertionError(f"stack {stack_id} still {stacks.get(stack_id).status}")


def test_an_agents_token_signal_completes_the_wait_condition(
    client: TestClient, stacks: LocalStackService
) -> None:
    stack_id = stacks.create("s1", TEMPLATE, {})
    path, token = _handle(stacks, stack_id)
    assert path == f"/orchestration/v1/stacks/{stack_id}/resources/handle/signal"
    r = client.post(
        path,
        json={"status": "SUCCESS", "reason": "db up", "data": "5432", "id": "i-1"},
        headers={"X-Auth-Token": token},
    )
    assert r.status_code == 200 and r.content == b""
    stack = _settled(stacks, stack_id)
    assert stack.status == "CREATE_COMPLETE"
    assert stack.outputs["endpoint"] == f"http://control-plane:8779{path}"
    assert json.loads(stack.outputs["data"]) == {"1": "5432"}
    signals = [(e.resource_name, e.reason) for e in stacks.events(stack_id) if e.action == "SIGNAL"]
    assert signals == [("handle", "db up")]


def test_a_wrong_or_missing_token_is_refused_and_counts_for_nothing(
    client: TestClient, stacks: LocalStackService, signals: WatchedSignals
) -> None:
    stack_id = stacks.create("s1", TEMPLATE, {"count": 2})
    path, token = _handle(stacks, stack_id)
    wrong = client.post(path, json={"status": "SUCCESS"}, headers={"X-Auth-Token": "x" * 32})
    missing = client.post(path, json={"status": "SUCCESS"})
    assert (wrong.status_code, missing.status_code) == (401, 401)
    assert "X-Auth-Token" in wrong.text
    # The same signal id twice is one signal (Heat replaces it): 1 of 2, still waiting.
    for _ in range(2):
        r = client.post(path, json={"id": "a"}, headers={"X-Auth-Token": token})
        assert r.status_code == 200
    signals.read_again()  # the engine has seen them, and still waits
    assert stacks.get(stack_id).status == "CREATE_IN_PROGRESS"
    r = client.post(path, json={"id": "b"}, headers={"X-Auth-Token": token})
    assert _settled(stacks, stack_id).status == "CREATE_COMPLETE"


def test_a_failure_signal_fails_the_stack_with_the_agents_reason(
    client: TestClient, stacks: LocalStackService
) -> None:
    stack_id = stacks.create("s1", TEMPLATE, {}, disable_rollback=True)
    path, token = _handle(stacks, stack_id)
    r = client.post(
        path,
        json={"status": "FAILURE", "reason": "prepare failed: disk full"},
        headers={"X-Auth-Token": token},
    )
    assert r.status_code == 200
    stack = _settled(stacks, stack_id)
    assert stack.status == "CREATE_FAILED"
    assert "prepare failed: disk full" in stack.status_reason


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "MAYBE"}, "status"),
        ({"status": "SUCCESS", "colour": "red"}, "colour"),
    ],
)
def test_a_signal_body_heat_would_refuse_is_a_400_naming_the_field(
    client: TestClient, stacks: LocalStackService, body: dict[str, Any], field: str
) -> None:
    stack_id = stacks.create("s1", TEMPLATE, {})
    path, token = _handle(stacks, stack_id)
    r = client.post(path, json=body, headers={"X-Auth-Token": token})
    assert r.status_code == 400
    assert field in r.json()["badRequest"]["message"]
    assert stacks.get(stack_id).status == "CREATE_IN_PROGRESS"


def test_unknown_stacks_and_resources_and_non_handles(
    client: TestClient, stacks: LocalStackService
) -> None:
    stack_id = stacks.create("s1", TEMPLATE, {})
    path, token = _handle(stacks, stack_id)
    headers = {"X-Auth-Token": token}
    gone = client.post(path.replace(stack_id, "no-such-stack"), json={}, headers=headers)
    assert gone.status_code == 404
    missing = client.post(path.replace("/handle/", "/nothing/"), json={}, headers=headers)
    assert missing.status_code == 404 and "nothing" in missing.text
    condition = client.post(path.replace("/handle/", "/ready/"), json={}, headers=headers)
    assert condition.status_code == 400 and "OS::Heat::WaitCondition" in condition.text
