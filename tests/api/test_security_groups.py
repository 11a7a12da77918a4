"""Security groups (GET) and rules: add (201), change a CIDR (202), delete (204)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.helpers import (
    Api,
    ApiWithManager,
    MakeApi,
    create,
    fault_of,
    jobs,
    make_active,
    manager_supporting,
)
from cellar.db import instances as repo
from cellar.db.engine import transaction
from cellar.db.models import SecurityGroupRule
from cellar.domain.specs import RuleSpec, rule_from_dict
from cellar.domain.status import InstanceTask
from cellar.resource_managers.base import Operation


def rule_jobs(sessions: sessionmaker[Session], iid: str) -> list[tuple[str, dict[str, Any]]]:
    return [(j.kind, j.args) for j in jobs(sessions, iid) if j.kind != "provision_instance"]


@pytest.fixture
def instance(api: Api, sessions: sessionmaker[Session]) -> dict[str, Any]:
    view = create(api)
    make_active(sessions, view["id"])
    return view


@pytest.fixture
def group(api: Api, instance: dict[str, Any]) -> dict[str, Any]:
    (found,) = api.get("/security-groups").json()["security_groups"]
    assert found["instance_id"] == instance["id"]
    return dict(found)


def test_list_and_show_groups_with_rules(
    api: Api, make_api: MakeApi, group: dict[str, Any]
) -> None:
    assert group["name"] == f"cellar-{group['instance_id']}"
    (rule,) = group["rules"]
    assert {k: rule[k] for k in ("protocol", "from_port", "to_port", "cidr")} == {
        "protocol": "tcp",
        "from_port": 5432,
        "to_port": 5432,
        "cidr": "0.0.0.0/0",
    }
    assert api.get(f"/security-groups/{group['id']}").json()["security_group"] == group
    other = make_api("p2")
    assert other.get("/security-groups").json() == {"security_groups": []}
    fault_of(other.get(f"/security-groups/{group['id']}"), "itemNotFound", 404)


def test_groups_of_deleted_instances_are_not_listed(
    api: Api, sessions: sessionmaker[Session], group: dict[str, Any]
) -> None:
    with transaction(sessions) as session:
        repo.update_instance(session, instance_id=group["instance_id"], deleted=True)
    assert api.get("/security-groups").json() == {"security_groups": []}
    fault_of(api.get(f"/security-groups/{group['id']}"), "itemNotFound", 404)


def test_add_rule_makes_one_rule_and_job_per_port(
    api: Api, sessions: sessionmaker[Session], group: dict[str, Any]
) -> None:
    body = {"security_group_rule": {"group_id": group["id"], "cidr": "10.9.0.0/16"}}
    response = api.post("/security-group-rules", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    made = created["security_group_rule"]
    assert created["security_group_rules"] == [made]
    assert (made["security_group_id"], made["cidr"], made["from_port"]) == (
        group["id"],
        "10.9.0.0/16",
        5432,
    )
    ((kind, args),) = rule_jobs(sessions, group["instance_id"])
    assert kind == "add_security_group_rule"
    assert args["rule_id"] == made["id"]
    assert rule_from_dict(args["rule"]) == RuleSpec("tcp", 5432, 5432, "10.9.0.0/16")
    shown = api.get(f"/security-groups/{group['id']}").json()["security_group"]
    assert [r["cidr"] for r in shown["rules"]] == ["0.0.0.0/0", "10.9.0.0/16"]


GROUP = "<the group's id>"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"cidr": "10.0.0.0/8"}, "security_group_rule.group_id: is required"),
        ({"group_id": "nope", "cidr": "10.0.0.0/8"}, "security_group_rule.group_id: Security"),
        ({"group_id": GROUP}, "security_group_rule.cidr: is required"),
        ({"group_id": GROUP, "cidr": "10.0.0.300/32"}, "security_group_rule.cidr: '10.0.0.300/"),
        ({"group_id": GROUP, "cidr": "10.0.0.1/8"}, "security_group_rule.cidr: '10.0.0.1/8' has"),
        ({"group_id": GROUP, "cidr": 10}, "security_group_rule.cidr: must be a CIDR string"),
        ({"group_id": GROUP, "cidr": "0.0.0.0/0"}, "security_group_rule.cidr: the group already"),
        (
            {"group_id": GROUP, "cidr": "10.0.0.0/8", "from_port": 1},
            "security_group_rule.from_port: is not an accepted field",
        ),
    ],
)
def test_bad_rule_is_400_and_writes_nothing(
    api: Api,
    sessions: sessionmaker[Session],
    group: dict[str, Any],
    rule: dict[str, Any],
    message: str,
) -> None:
    rule = {k: group["id"] if v == GROUP else v for k, v in rule.items()}
    response = api.post("/security-group-rules", json={"security_group_rule": rule})
    assert fault_of(response, "badRequest", 400).startswith(message)
    assert rule_jobs(sessions, group["instance_id"]) == []


def test_delete_rule_marks_it_and_submits_a_job(
    api: Api, sessions: sessionmaker[Session], group: dict[str, Any]
) -> None:
    (rule,) = group["rules"]
    response = api.delete(f"/security-group-rules/{rule['id']}")
    assert (response.status_code, response.content) == (204, b"")
    assert rule_jobs(sessions, group["instance_id"]) == [
        ("delete_security_group_rule", {"rule_id": rule["id"]})
    ]
    with transaction(sessions) as session:
        row = session.get(SecurityGroupRule, rule["id"])
        assert row is not None and row.deleted
    assert api.get(f"/security-groups/{group['id']}").json()["security_group"]["rules"] == []
    fault_of(api.delete(f"/security-group-rules/{rule['id']}"), "itemNotFound", 404)


def test_change_rule_cidr_submits_a_job_and_leaves_the_row_to_it(
    api: Api, sessions: sessionmaker[Session], group: dict[str, Any]
) -> None:
    (rule,) = group["rules"]
    body = {"security_group_rule": {"cidr": "172.16.0.0/12"}}
    response = api.put(f"/security-group-rules/{rule['id']}", json=body)
    assert (response.status_code, response.content) == (202, b"")
    assert rule_jobs(sessions, group["instance_id"]) == [
        ("update_security_group_rule_cidr", {"rule_id": rule["id"], "cidr": "172.16.0.0/12"})
    ]
    # The task manager changes the row once the cloud's rule is replaced.
    with transaction(sessions) as session:
        assert [r.cidr for r in session.scalars(select(SecurityGroupRule))] == ["0.0.0.0/0"]


@pytest.mark.parametrize(
    ("cidr", "message"),
    [
        ("0.0.0.0/0", "security_group_rule.cidr: the rule already has CIDR 0.0.0.0/0"),
        ("1.2.3.4/8", "security_group_rule.cidr: '1.2.3.4/8' has host bits set"),
        (None, "security_group_rule.cidr: must be a CIDR string"),
    ],
)
def test_bad_cidr_change_is_400(
    api: Api, sessions: sessionmaker[Session], group: dict[str, Any], cidr: Any, message: str
) -> None:
    (rule,) = group["rules"]
    response = api.put(
        f"/security-group-rules/{rule['id']}", json={"security_group_rule": {"cidr": cidr}}
    )
    assert fault_of(response, "badRequest", 400).startswith(message)
    assert rule_jobs(sessions, group["instance_id"]) == []


def test_another_projects_rules_are_404(
    make_api: MakeApi, sessions: sessionmaker[Session], group: dict[str, Any]
) -> None:
    other = make_api("p2")
    (rule,) = group["rules"]
    body = {"security_group_rule": {"group_id": group["id"], "cidr": "10.0.0.0/8"}}
    assert "group_id" in fault_of(other.post("/security-group-rules", json=body), "badRequest", 400)
    fault_of(other.delete(f"/security-group-rules/{rule['id']}"), "itemNotFound", 404)
    update = {"security_group_rule": {"cidr": "10.0.0.0/8"}}
    fault_of(other.put(f"/security-group-rules/{rule['id']}", json=update), "itemNotFound", 404)
    assert rule_jobs(sessions, group["instance_id"]) == []


def test_rules_of_a_building_instance_may_be_added_but_not_changed(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    iid = create(api)["id"]
    (group,) = api.get("/security-groups").json()["security_groups"]
    (rule,) = group["rules"]
    body = {"security_group_rule": {"group_id": group["id"], "cidr": "10.0.0.0/8"}}
    assert api.post("/security-group-rules", json=body).status_code == 201
    message = fault_of(
        api.delete(f"/security-group-rules/{rule['id']}"), "unprocessableEntity", 422
    )
    assert "BUILDING" in message
    update = {"security_group_rule": {"cidr": "10.0.0.0/8"}}
    fault_of(
        api.put(f"/security-group-rules/{rule['id']}", json=update), "unprocessableEntity", 422
    )
    assert [k for k, _ in rule_jobs(sessions, iid)] == ["add_security_group_rule"]


@pytest.mark.parametrize("task", [InstanceTask.DELETING, InstanceTask.BUILDING_ERROR_VOLUME])
def test_rules_of_a_failed_or_departing_instance_do_not_change(
    api: Api, sessions: sessionmaker[Session], task: InstanceTask
) -> None:
    iid = create(api)["id"]
    with transaction(sessions) as session:
        repo.change_task(session, instance_id=iid, target=task)
    (group,) = api.get("/security-groups").json()["security_groups"]
    body = {"security_group_rule": {"group_id": group["id"], "cidr": "10.0.0.0/8"}}
    message = fault_of(api.post("/security-group-rules", json=body), "unprocessableEntity", 422)
    assert task.value in message
    assert rule_jobs(sessions, iid) == []


@pytest.mark.parametrize(
    ("operation", "call"),
    [
        (Operation.ADD_SECURITY_GROUP_RULE, "post"),
        (Operation.UPDATE_SECURITY_GROUP_RULE_CIDR, "put"),
        (Operation.DELETE_SECURITY_GROUP_RULE, "delete"),
    ],
)
def test_unsupported_rule_operations_are_501(
    api_with_manager: ApiWithManager,
    sessions: sessionmaker[Session],
    operation: Operation,
    call: str,
) -> None:
    api = api_with_manager(manager_supporting("partial", set(Operation) - {operation}))
    iid = create(api)["id"]
    make_active(sessions, iid)
    (group,) = api.get("/security-groups").json()["security_groups"]
    rule_id = group["rules"][0]["id"]
    if call == "post":
        body = {"security_group_rule": {"group_id": group["id"], "cidr": "10.0.0.0/8"}}
        response = api.post("/security-group-rules", json=body)
    elif call == "put":
        body = {"security_group_rule": {"cidr": "10.0.0.0/8"}}
        response = api.put(f"/security-group-rules/{rule_id}", json=body)
    else:
        response = api.delete(f"/security-group-rules/{rule_id}")
    assert f"'{operation.value}'" in fault_of(response, "notImplemented", 501)
    assert rule_jobs(sessions, iid) == []
