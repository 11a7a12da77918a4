"""Persistence of security groups and their rules (the control plane's intent).

The API writes a rule row with `provider_id` None and submits a job; the task manager
applies it to the cloud and records the cloud's id. A deleted rule keeps its row
(`deleted` True) so that the task manager can still find what to remove.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from cellar.db.instances import utcnow
from cellar.db.models import Instance, SecurityGroup, SecurityGroupRule
from cellar.domain.errors import NotFound
from cellar.domain.specs import RuleSpec


def create_security_group(
    session: Session,
    *,
    instance_id: str,
    project_id: str,
    name: str,
    rules: Sequence[RuleSpec] = (),
    description: str = "",
) -> SecurityGroup:
    group = SecurityGroup(
        id=str(uuid.uuid4()),
        tenant_id=project_id,
        instance_id=instance_id,
        name=name,
        description=description,
        created=utcnow(),
        deleted=False,
    )
    session.add(group)
    session.flush()
    add_rules(session, group_id=group.id, rules=rules)
    return group


def add_rules(
    session: Session, *, group_id: str, rules: Sequence[RuleSpec]
) -> list[SecurityGroupRule]:
    now = utcnow()
    rows = [
        SecurityGroupRule(
            id=str(uuid.uuid4()),
            group_id=group_id,
            protocol=rule.protocol,
            from_port=rule.from_port,
            to_port=rule.to_port,
            cidr=rule.cidr,
            created=now,
            deleted=False,
        )
        for rule in rules
    ]
    session.add_all(rows)
    session.flush()
    return rows


def _live_groups() -> Select[SecurityGroup]:
    return (
        select(SecurityGroup)
        .join(Instance, Instance.id == SecurityGroup.instance_id)
        .where(SecurityGroup.deleted.is_(False), Instance.deleted.is_(False))
    )


def list_security_groups(session: Session, *, project_id: str) -> list[SecurityGroup]:
    """The project's groups whose instance is not deleted, oldest first."""
    query = _live_groups().where(SecurityGroup.tenant_id == project_id)
    return list(session.scalars(query.order_by(SecurityGroup.created, SecurityGroup.id)))


def get_security_group(
    session: Session, *, group_id: str, project_id: str | None = None
) -> SecurityGroup:
    """The group, or NotFound; with `project_id`, another project's group is NotFound."""
    query = _live_groups().where(SecurityGroup.id == group_id)
    if project_id is not None:
        query = query.where(SecurityGroup.tenant_id == project_id)
    group = session.scalars(query).first()
    if group is None:
        raise NotFound("Security group", group_id)
    return group


def list_rules(session: Session, *, group_ids: Iterable[str]) -> dict[str, list[SecurityGroupRule]]:
    """`{group id: its live rules, oldest first}`; every asked group has an entry."""
    ids = list(dict.fromkeys(group_ids))
    result: dict[str, list[SecurityGroupRule]] = {gid: [] for gid in ids}
    if not ids:
        return result
    rows = session.scalars(
        select(SecurityGroupRule)
        .where(SecurityGroupRule.group_id.in_(ids), SecurityGroupRule.deleted.is_(False))
        .order_by(SecurityGroupRule.created, SecurityGroupRule.from_port, SecurityGroupRule.id)
    )
    for row in rows:
        result[row.group_id].append(row)
    return result


def get_rule(
    session: Session, *, rule_id: str, project_id: str | None = None
) -> tuple[SecurityGroupRule, SecurityGroup]:
    """A live rule and its group, or NotFound (also for another project's rule)."""
    row = session.get(SecurityGroupRule, rule_id)
    if row is None or row.deleted:
        raise NotFound("Security group rule", rule_id)
    try:
        group = get_security_group(session, group_id=row.group_id, project_id=project_id)
    except NotFound:
        raise NotFound("Security group rule", rule_id) from None
    return row, group


def delete_rule(session: Session, *, rule_id: str) -> None:
    """Mark the rule deleted (its row stays for the task manager)."""
    session.execute(
        update(SecurityGroupRule)
        .where(SecurityGroupRule.id == rule_id)
        .values(deleted=True)
        .execution_options(synchronize_session="fetch")
    )
