"""What python-troveclient asks of Trove beyond the instance's own actions: `reset_status`
(and with `force_delete`), the management actions (`POST /mgmt/instances/{id}/action`:
reboot, reset-task-status), the management list, `/instances/detail`, and the view's
`operating_status`."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from api.helpers import Api, MakeApi, create, fault_of, jobs, make_active
from cellar.db import instances as repo
from cellar.db.engine import transaction
from cellar.domain.status import InstanceTask


@pytest.fixture
def admin(make_api: MakeApi) -> Api:
    return make_api("ops", admin=True)


def view(api: Api, iid: str) -> dict[str, Any]:
    found: dict[str, Any] = api.get(f"/instances/{iid}").json()["instance"]
    return found


def test_operating_status_is_the_datastore_once_idle(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    iid = create(api)["id"]
    assert (view(api, iid)["status"], view(api, iid)["operating_status"]) == ("BUILD", "")
    make_active(sessions, iid)
    assert (view(api, iid)["status"], view(api, iid)["operating_status"]) == ("ACTIVE", "HEALTHY")
    with transaction(sessions) as session:
        repo.update_instance(session, instance_id=iid, service_status="SHUTDOWN")
    assert view(api, iid)["operating_status"] == "SHUTDOWN"
    with transaction(sessions) as session:
        repo.change_task(session, instance_id=iid, target=InstanceTask.RESTARTING)
    assert view(api, iid)["operating_status"] == ""


def test_reset_status_takes_any_state_back_to_a_deletable_one(
    api: Api, admin: Api, sessions: sessionmaker[Session]
) -> None:
    iid = create(api)["id"]  # BUILD, its provision job pending
    refused = api.post(f"/instances/{iid}/action", json={"reset_status": {}})
    assert "for administrators" in fault_of(refused, "forbidden", 403)
    assert view(api, iid)["task"] == "BUILDING"

    with transaction(sessions) as session:
        repo.update_instance(session, instance_id=iid, server_status="ACTIVE")
    reset = admin.as_tenant("p1").post(f"/instances/{iid}/action", json={"reset_status": {}})
    assert (reset.status_code, reset.content) == (202, b"")
    shown = view(api, iid)
    # Trove's: the task cleared, the datastore UNKNOWN (operating status ERROR).
    assert (shown["task"], shown["status"], shown["operating_status"]) == (
        "NONE",
        "ACTIVE",
        "ERROR",
    )

    # With force_delete, Trove lets the owner reset too.
    owner = api.post(f"/instances/{iid}/action", json={"reset_status": {"force_delete": True}})
    assert owner.status_code == 202
    bad = api.post(f"/instances/{iid}/action", json={"reset_status": {"x": 1}})
    assert "reset_status.x" in fault_of(bad, "badRequest", 400)

    assert api.delete(f"/instances/{iid}").status_code == 202
    assert view(api, iid)["task"] == "DELETING"
    assert [j.kind for j in jobs(sessions, iid)] == ["provision_instance", "delete_instance"]


def test_mgmt_actions_are_for_administrators(
    api: Api, admin: Api, sessions: sessionmaker[Session]
) -> None:
    iid = create(api)["id"]
    make_active(sessions, iid)
    path = f"/mgmt/instances/{iid}/action"
    fault_of(api.post(path, json={"reboot": {}}), "forbidden", 403)
    unknown = admin.post(path, json={"migrate": {}})
    assert "migrate: is not an action" in fault_of(unknown, "badRequest", 400)

    assert admin.post(path, json={"reboot": {}}).status_code == 202
    assert view(api, iid)["status"] == "REBOOT"
    assert [j.kind for j in jobs(sessions, iid)][-1] == "reboot"
    busy = admin.post(path, json={"reboot": {}})
    assert "not ready" in fault_of(busy, "unprocessableEntity", 422)

    assert admin.post(path, json={"reset-task-status": {}}).status_code == 202
    assert view(api, iid)["task"] == "NONE"
    missing = admin.post("/mgmt/instances/nope/action", json={"reboot": {}})
    fault_of(missing, "itemNotFound", 404)


def test_mgmt_reboot_by_the_object_troveclient_sends(
    api: Api, admin: Api, sessions: sessionmaker[Session]
) -> None:
    """`openstack database instance reboot NAME` puts the found Instance's repr where the
    id belongs (python-troveclient 8.x); the id inside it is used."""
    iid = create(api)["id"]
    make_active(sessions, iid)
    ref = (
        f"<Instance created=2026-12-02T15:25:30, flavor={{'id': '2'}}, id={iid}, "
        f"links=[{{'href': 'http://x/v1.0/p1/instances/{iid}', 'rel': 'self'}}], name=db1>"
    )
    assert admin.post(f"/mgmt/instances/{ref}/action", json={"reboot": {}}).status_code == 202
    assert view(api, iid)["task"] == "REBOOTING"
    fault_of(admin.post("/mgmt/instances/a/b/action", json={"reboot": {}}), "itemNotFound", 404)


def test_instances_detail_and_the_management_list(api: Api, admin: Api, make_api: MakeApi) -> None:
    mine = create(api)["id"]
    theirs = create(make_api("p2"))["id"]
    detail = api.get("/instances/detail").json()["instances"]
    assert [i["id"] for i in detail] == [mine]
    assert detail == api.get("/instances").json()["instances"]

    fault_of(api.get("/mgmt/instances"), "forbidden", 403)
    every = admin.get("/mgmt/instances", params={"deleted": "False"}).json()["instances"]
    assert {(i["id"], i["tenant_id"]) for i in every} == {(mine, "p1"), (theirs, "p2")}
    only = admin.get("/mgmt/instances", params={"project_id": "p2"}).json()["instances"]
    assert [i["id"] for i in only] == [theirs]
    paged = admin.get("/mgmt/instances", params={"limit": 1}).json()
    assert len(paged["instances"]) == 1 and paged["links"][0]["rel"] == "next"
