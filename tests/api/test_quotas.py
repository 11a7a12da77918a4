"""Quotas and limits as Trove has them: `GET /limits`, `GET/PUT /mgmt/quotas/{project}`,
and a create or resize past a quota refused with 413 (`overLimit`, Trove's message)
before anything is written."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from api.helpers import Api, MakeApi, create, create_body, fault_of, jobs, make_active
from cellar.db import instances as repo
from cellar.db.engine import transaction
from cellar.db.models import Instance, Job, SecurityGroup


@pytest.fixture
def admin(make_api: MakeApi) -> Api:
    return make_api("ops", admin=True)


def quotas_of(api: Api, project: str) -> dict[str, dict[str, Any]]:
    response = api.get(f"/mgmt/quotas/{project}")
    assert response.status_code == 200, response.text
    return {q["resource"]: q for q in response.json()["quotas"]}


def set_quota(admin: Api, project: str, **limits: Any) -> dict[str, Any]:
    response = admin.put(f"/mgmt/quotas/{project}", json={"quotas": limits})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def written(sessions: sessionmaker[Session]) -> tuple[int, int, int]:
    with transaction(sessions) as session:
        return tuple(  # type: ignore[return-value]
            session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Instance, SecurityGroup, Job)
        )


def test_limits_are_the_absolute_quotas(api: Api, admin: Api) -> None:
    assert api.get("/limits").json() == {
        "limits": [
            {
                "verb": "ABSOLUTE",
                "max_instances": 10,
                "max_ram": -1,
                "max_volumes": 40,
                "max_backups": 50,
            }
        ]
    }
    set_quota(admin, "p1", instances=3)
    assert api.get("/limits").json()["limits"][0]["max_instances"] == 3


def test_quota_show_counts_what_a_project_holds(
    api: Api, admin: Api, sessions: sessionmaker[Session]
) -> None:
    create(api, flavorRef="2", volume={"size": 2})
    gone = create(api, flavorRef="3", volume={"size": 5})["id"]
    with transaction(sessions) as session:
        repo.update_instance(session, instance_id=gone, deleted=True)
    assert quotas_of(api, "p1") == {
        "instances": {"resource": "instances", "in_use": 1, "reserved": 0, "limit": 10},
        "ram": {"resource": "ram", "in_use": 1024, "reserved": 0, "limit": -1},
        "volumes": {"resource": "volumes", "in_use": 2, "reserved": 0, "limit": 40},
        "backups": {"resource": "backups", "in_use": 0, "reserved": 0, "limit": 50},
    }
    # Another project's quotas: its own token or an admin's, nobody else's.
    assert "project p2" in fault_of(api.get("/mgmt/quotas/p2"), "forbidden", 403)
    assert quotas_of(admin, "p2")["instances"]["in_use"] == 0


def test_quota_update_is_for_administrators_and_checked(api: Api, admin: Api) -> None:
    fault_of(api.put("/mgmt/quotas/p1", json={"quotas": {"instances": 50}}), "forbidden", 403)
    assert set_quota(admin, "p1", instances=2, volumes=None, backups=-1) == {
        "quotas": {"instances": 2, "backups": -1}
    }
    shown = quotas_of(api, "p1")
    assert (shown["instances"]["limit"], shown["volumes"]["limit"]) == (2, 40)
    assert shown["backups"]["limit"] == -1

    unknown = admin.put("/mgmt/quotas/p1", json={"quotas": {"cpus": 4}})
    assert "cpus" in fault_of(unknown, "itemNotFound", 404)
    small = admin.put("/mgmt/quotas/p1", json={"quotas": {"instances": -2}})
    assert "quotas.instances: limit -2 is too small" in fault_of(small, "badRequest", 400)
    text = admin.put("/mgmt/quotas/p1", json={"quotas": {"instances": "3"}})
    assert "quotas.instances" in fault_of(text, "badRequest", 400)
    huge = admin.put("/mgmt/quotas/p1", json={"quotas": {"volumes": 2**40}})
    assert "quotas.volumes: must be at most" in fault_of(huge, "badRequest", 400)
    assert quotas_of(api, "p1")["instances"]["limit"] == 2


def test_a_create_past_a_quota_is_413_and_writes_nothing(
    api: Api, admin: Api, sessions: sessionmaker[Session]
) -> None:
    set_quota(admin, "p1", instances=1, volumes=5)
    create(api, volume={"size": 4})
    before = written(sessions)

    over = api.post("/instances", json=create_body(name="db2", volume={"size": 1}))
    assert fault_of(over, "overLimit", 413) == "Quota exceeded for resources: ['instances']."
    both = api.post("/instances", json=create_body(name="db2", volume={"size": 2}))
    assert "['instances', 'volumes']" in fault_of(both, "overLimit", 413)
    assert written(sessions) == before

    # Another project has its own quota.
    assert api.as_tenant("p2").post("/instances", json=create_body()).status_code == 403
    assert admin.as_tenant("p2").post("/instances", json=create_body()).status_code == 200


def test_replicas_and_cluster_members_count(
    api: Api, admin: Api, sessions: sessionmaker[Session]
) -> None:
    set_quota(admin, "p1", instances=2)
    primary = create(api)["id"]
    make_active(sessions, primary)
    body = create_body(name="r", replica_of=primary, replica_count=2)
    body["instance"].pop("flavorRef")
    body["instance"].pop("volume")
    over = api.post("/instances", json=body)
    assert fault_of(over, "overLimit", 413) == "Quota exceeded for resources: ['instances']."

    members = [{"flavorRef": "1", "volume": {"size": 1}}] * 2
    cluster = api.post("/clusters", json={"cluster": {"name": "c", "instances": members}})
    assert "['instances']" in fault_of(cluster, "overLimit", 413)
    assert len(api.get("/instances").json()["instances"]) == 1


def test_a_resize_past_a_quota_is_413_and_changes_nothing(
    api: Api, admin: Api, sessions: sessionmaker[Session]
) -> None:
    iid = create(api, flavorRef="1", volume={"size": 2})["id"]
    make_active(sessions, iid)
    set_quota(admin, "p1", volumes=3, ram=1024)

    grow = api.post(f"/instances/{iid}/action", json={"resize": {"volume": {"size": 4}}})
    assert fault_of(grow, "overLimit", 413) == "Quota exceeded for resources: ['volumes']."
    bigger = api.post(f"/instances/{iid}/action", json={"resize": {"flavorRef": "3"}})
    assert fault_of(bigger, "overLimit", 413) == "Quota exceeded for resources: ['ram']."
    view = api.get(f"/instances/{iid}").json()["instance"]
    assert (view["task"], view["volume"]["size"], view["flavor"]["id"]) == ("NONE", 2, "1")
    assert [j.kind for j in jobs(sessions, iid)] == ["provision_instance"]

    ok = api.post(f"/instances/{iid}/action", json={"resize": {"volume": {"size": 3}}})
    assert ok.status_code == 202
