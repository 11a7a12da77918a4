"""POST /instances/{id}/action: resize, resize volume, restart, reboot.

400 for bad bodies, 422 when the instance's state refuses, 409 for a lost
compare-and-set, 501 when the resource manager lacks the operation; a refused action
writes no job and leaves the task as it was.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from httpx import Response
from sqlalchemy.orm import Session, sessionmaker

from api.helpers import Api, ApiWithManager, create, fault_of, jobs, make_active, manager_supporting
from cellar.db import instances as repo
from cellar.db.engine import transaction
from cellar.domain.specs import flavor_from_dict
from cellar.domain.status import InstanceTask
from cellar.resource_managers.base import Operation


@pytest.fixture
def active(api: Api, sessions: sessionmaker[Session]) -> str:
    iid: str = create(api)["id"]
    make_active(sessions, iid)
    return iid


def act(api: Api, iid: str, body: Any) -> Response:
    return api.post(f"/instances/{iid}/action", json=body)


def action_jobs(sessions: sessionmaker[Session], iid: str) -> list[tuple[str, dict[str, Any]]]:
    return [(j.kind, j.args) for j in jobs(sessions, iid) if j.kind != "provision_instance"]


def task_of(api: Api, iid: str) -> str:
    task: str = api.get(f"/instances/{iid}").json()["instance"]["task"]
    return task


def test_resize_flavor(api: Api, sessions: sessionmaker[Session], active: str) -> None:
    response = act(api, active, {"resize": {"flavorRef": "3"}})
    assert (response.status_code, response.content) == (202, b"")
    ((kind, args),) = action_jobs(sessions, active)
    assert kind == "resize_flavor"
    assert flavor_from_dict(args["flavor"]).name == "m1.medium"
    view = api.get(f"/instances/{active}").json()["instance"]
    assert (view["task"], view["status"]) == ("RESIZING", "RESIZE")


def test_resize_volume(api: Api, sessions: sessionmaker[Session], active: str) -> None:
    assert act(api, active, {"resize": {"volume": {"size": 5}}}).status_code == 202
    assert action_jobs(sessions, active) == [("resize_volume", {"size_gb": 5})]
    assert task_of(api, active) == "RESIZING_VOLUME"


@pytest.mark.parametrize(
    ("action", "kind", "task"),
    [("restart", "restart", "RESTARTING"), ("reboot", "reboot", "REBOOTING")],
)
def test_restart_and_reboot(
    api: Api, sessions: sessionmaker[Session], active: str, action: str, kind: str, task: str
) -> None:
    assert act(api, active, {action: {}}).status_code == 202
    assert action_jobs(sessions, active) == [(kind, {})]
    view = api.get(f"/instances/{active}").json()["instance"]
    assert (view["task"], view["status"]) == (task, "REBOOT")


BAD_ACTIONS: list[tuple[Any, str]] = [
    ({}, "body: must hold exactly one action"),
    ({"restart": {}, "reboot": {}}, "body: must hold exactly one action"),
    ({"migrate": {}}, "migrate: is not an action; choose one of reboot, resize, restart"),
    ([], "body: must be an object"),
    ({"restart": {"now": True}}, "restart.now: is not an accepted field"),
    ({"reboot": None}, "reboot: must be an object"),
    ({"resize": {}}, "resize: give exactly one of flavorRef or volume"),
    ({"resize": {"flavorRef": "3", "volume": {"size": 5}}}, "resize: give exactly one of"),
    ({"resize": {"flavorRef": "2"}}, "resize.flavorRef: the instance already has flavor '2'"),
    ({"resize": {"flavorRef": "99"}}, "resize.flavorRef: flavor '99' does not exist"),
    ({"resize": {"volume": {"size": 2}}}, "resize.volume.size: must be larger than the current"),
    ({"resize": {"volume": {"size": 1}}}, "resize.volume.size: must be larger than the current"),
    ({"resize": {"volume": {"size": 0}}}, "resize.volume.size: must be an integer between 1"),
    ({"resize": {"volume": {}}}, "resize.volume.size: is required"),
]


@pytest.mark.parametrize(("body", "message"), BAD_ACTIONS)
def test_bad_action_is_400_and_writes_nothing(
    api: Api, sessions: sessionmaker[Session], active: str, body: Any, message: str
) -> None:
    assert fault_of(act(api, active, body), "badRequest", 400).startswith(message)
    assert action_jobs(sessions, active) == []
    assert task_of(api, active) == "NONE"


@pytest.mark.parametrize("body", [{"restart": {}}, {"reboot": {}}, {"resize": {"flavorRef": "3"}}])
def test_actions_from_build_are_422(api: Api, sessions: sessionmaker[Session], body: Any) -> None:
    iid = create(api)["id"]
    message = fault_of(act(api, iid, body), "unprocessableEntity", 422)
    assert "BUILD" in message
    assert action_jobs(sessions, iid) == []
    assert task_of(api, iid) == "BUILDING"


def test_action_while_another_runs_is_422(
    api: Api, sessions: sessionmaker[Session], active: str
) -> None:
    assert act(api, active, {"reboot": {}}).status_code == 202
    fault_of(act(api, active, {"restart": {}}), "unprocessableEntity", 422)
    assert [k for k, _ in action_jobs(sessions, active)] == ["reboot"]


def test_action_when_the_datastore_is_down_is_422(
    api: Api, sessions: sessionmaker[Session], active: str
) -> None:
    with transaction(sessions) as session:
        repo.update_instance(session, instance_id=active, service_status="FAILED")
    assert "FAILED" in fault_of(act(api, active, {"restart": {}}), "unprocessableEntity", 422)


class Racing(manager_supporting("racing", set(Operation))):  # type: ignore[misc]
    """A manager that, asked for `operation` on `instance_id` the first time, lets a
    concurrent request move that instance's task along `path` (committed in its own
    transaction): after this request read the instance, before it sets the task."""

    sessions: ClassVar[sessionmaker[Session]]
    operation: ClassVar[Operation]
    path: ClassVar[list[InstanceTask]]
    instance_id: ClassVar[str | None] = None
    raced: ClassVar[bool] = False

    @classmethod
    def require(cls, operation: Operation, provisioning_engine: str | None = None) -> None:
        super().require(operation, provisioning_engine)
        if operation is cls.operation and cls.instance_id and not cls.raced:
            cls.raced = True
            with transaction(cls.sessions) as session:
                for task in cls.path:
                    repo.change_task(session, instance_id=cls.instance_id, target=task)


def racing(
    sessions: sessionmaker[Session], operation: Operation, path: list[InstanceTask]
) -> type[Racing]:
    race: type[Racing] = type(
        "Race", (Racing,), {"sessions": sessions, "operation": operation, "path": path}
    )
    return race


def test_lost_compare_and_set_is_409_and_writes_nothing(
    api_with_manager: ApiWithManager, sessions: sessionmaker[Session]
) -> None:
    manager = racing(sessions, Operation.REBOOT, [InstanceTask.RESIZING])
    api = api_with_manager(manager)
    iid = create(api)["id"]
    make_active(sessions, iid)
    manager.instance_id = iid
    message = fault_of(act(api, iid, {"reboot": {}}), "conflictingRequest", 409)
    assert iid in message
    # The winner's task stands; the loser wrote no job.
    assert task_of(api, iid) == "RESIZING"
    assert action_jobs(sessions, iid) == []


def test_delete_retries_when_the_task_manager_moves_the_task(
    api_with_manager: ApiWithManager, sessions: sessionmaker[Session]
) -> None:
    manager = racing(sessions, Operation.DELETE_INSTANCE, [InstanceTask.NONE])
    api = api_with_manager(manager)
    iid = create(api)["id"]
    manager.instance_id = iid
    assert api.delete(f"/instances/{iid}").status_code == 202
    assert task_of(api, iid) == "DELETING"
    assert action_jobs(sessions, iid) == [("delete_instance", {})]


@pytest.mark.parametrize(
    ("body", "operation"),
    [
        ({"resize": {"flavorRef": "3"}}, "resize_flavor"),
        ({"resize": {"volume": {"size": 9}}}, "resize_volume"),
        ({"reboot": {}}, "reboot"),
    ],
)
def test_unsupported_operation_is_501_naming_it(
    api_with_manager: ApiWithManager, sessions: sessionmaker[Session], body: Any, operation: str
) -> None:
    everything_else = set(Operation) - {Operation(operation)}
    api = api_with_manager(manager_supporting("partial", everything_else))
    iid = create(api)["id"]
    make_active(sessions, iid)
    message = fault_of(act(api, iid, body), "notImplemented", 501)
    assert f"'{operation}'" in message
    assert "'partial'" in message
    assert action_jobs(sessions, iid) == []
    # Restart is a guest task: no manager is asked.
    assert act(api, iid, {"restart": {}}).status_code == 202


def test_unsupported_provision_and_delete_are_501(
    api_with_manager: ApiWithManager, sessions: sessionmaker[Session]
) -> None:
    api = api_with_manager(manager_supporting("nothing", set()))
    response = api.post(
        "/instances", json={"instance": {"name": "x", "flavorRef": "2", "volume": {"size": 1}}}
    )
    assert "'provision_instance'" in fault_of(response, "notImplemented", 501)
    assert jobs(sessions) == []
    fault_of(api.delete("/instances/nope"), "itemNotFound", 404)
