"""`/security-group-rules`: add (201), change a rule's CIDR (202, cellar's own), delete (204).

As in Trove, a user names a CIDR and gets one rule per port of the datastore; ports are
not chosen. The API writes the intent (rule rows) and one job per rule; the task manager
applies it. A rule of a failed or departing instance does not change, and an existing
rule does not change while its instance is still being built (provisioning is still
recording the cloud's ids of the rules it made).
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy.orm import Session

from cellar.api.auth import Ctx
from cellar.api.deps import State
from cellar.api.schemas import RuleCreateRequest, RuleUpdateRequest
from cellar.api.views.security_groups import RuleCreated, rule_view
from cellar.db import catalog
from cellar.db import instances as instances_repo
from cellar.db import security_groups as repo
from cellar.db.engine import transaction
from cellar.db.jobs import submit_job
from cellar.db.models import Instance, SecurityGroup
from cellar.domain.errors import BadRequest, NotFound, UnprocessableEntity
from cellar.domain.specs import RuleSpec, rule_to_dict
from cellar.domain.status import InstanceTask
from cellar.resource_managers.base import Operation
from cellar.taskmanager.kinds import JobKind

router = APIRouter(tags=["security-groups"])

_DEPARTING = frozenset({InstanceTask.DELETING, InstanceTask.DELETED})


def _instance_of(session: Session, group: SecurityGroup, *, existing_rule: bool) -> Instance:
    """The group's instance, if its state lets its rules change (else 422)."""
    assert group.instance_id is not None
    row = instances_repo.get_instance(session, instance_id=group.instance_id)
    task = InstanceTask(row.task_status)
    building = existing_rule and task is InstanceTask.BUILDING
    if task in _DEPARTING or task.is_error or building:
        raise UnprocessableEntity(
            f"The security group rules of instance {row.id} cannot change while its task "
            f"is {task.value}."
        )
    return row


def _check_distinct(session: Session, *, group_id: str, rules: list[RuleSpec]) -> None:
    have = {
        (r.protocol, r.from_port, r.to_port, r.cidr)
        for r in repo.list_rules(session, group_ids=[group_id])[group_id]
    }
    for rule in rules:
        if (rule.protocol, rule.from_port, rule.to_port, rule.cidr) in have:
            raise BadRequest(
                "security_group_rule.cidr",
                f"the group already has a rule for {rule.cidr} on port {rule.from_port}",
            )


@router.post("/security-group-rules", status_code=201)
def create_rule(body: RuleCreateRequest, ctx: Ctx, state: State) -> RuleCreated:
    request = body.security_group_rule
    with transaction(state.sessions) as session:
        try:
            group = repo.get_security_group(
                session, group_id=request.group_id, project_id=ctx.scope
            )
        except NotFound as exc:
            raise BadRequest("security_group_rule.group_id", exc.message) from None
        instance = _instance_of(session, group, existing_rule=False)
        state.manager.require(
            Operation.ADD_SECURITY_GROUP_RULE,
            instance.provisioning_engine,
            member=instance.cluster_id is not None,
        )
        version = catalog.get_version_by_id(session, version_id=instance.datastore_version_id)
        specs = [RuleSpec("tcp", p, p, request.cidr) for p in catalog.version_ports(version)]
        _check_distinct(session, group_id=group.id, rules=specs)
        rows = repo.add_rules(session, group_id=group.id, rules=specs)
        for row, spec in zip(rows, specs, strict=True):
            submit_job(
                session,
                kind=JobKind.ADD_SECURITY_GROUP_RULE.value,
                instance_id=instance.id,
                args={"rule_id": row.id, "rule": rule_to_dict(spec)},
            )
    views = [rule_view(r) for r in rows]
    return RuleCreated(security_group_rule=views[0], security_group_rules=views)


@router.put("/security-group-rules/{rule_id}", status_code=202)
def update_rule(rule_id: str, body: RuleUpdateRequest, ctx: Ctx, state: State) -> Response:
    """Change the rule's CIDR; the row changes when the task manager has applied it."""
    cidr = body.security_group_rule.cidr
    with transaction(state.sessions) as session:
        rule, group = repo.get_rule(session, rule_id=rule_id, project_id=ctx.scope)
        instance = _instance_of(session, group, existing_rule=True)
        state.manager.require(
            Operation.UPDATE_SECURITY_GROUP_RULE_CIDR,
            instance.provisioning_engine,
            member=instance.cluster_id is not None,
        )
        if rule.cidr == cidr:
            raise BadRequest("security_group_rule.cidr", f"the rule already has CIDR {cidr}")
        spec = RuleSpec(rule.protocol, rule.from_port, rule.to_port, cidr)
        _check_distinct(session, group_id=group.id, rules=[spec])
        submit_job(
            session,
            kind=JobKind.UPDATE_SECURITY_GROUP_RULE_CIDR.value,
            instance_id=instance.id,
            args={"rule_id": rule.id, "cidr": cidr},
        )
    return Response(status_code=202)


@router.delete("/security-group-rules/{rule_id}", status_code=204)
def delete_rule(rule_id: str, ctx: Ctx, state: State) -> Response:
    with transaction(state.sessions) as session:
        rule, group = repo.get_rule(session, rule_id=rule_id, project_id=ctx.scope)
        instance = _instance_of(session, group, existing_rule=True)
        state.manager.require(
            Operation.DELETE_SECURITY_GROUP_RULE,
            instance.provisioning_engine,
            member=instance.cluster_id is not None,
        )
        repo.delete_rule(session, rule_id=rule.id)
        submit_job(
            session,
            kind=JobKind.DELETE_SECURITY_GROUP_RULE.value,
            instance_id=instance.id,
            args={"rule_id": rule.id},
        )
    return Response(status_code=204)
