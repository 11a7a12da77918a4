"""Views of security groups and rules (Trove's `extensions/security_group/views.py`)."""

from __future__ import annotations

from cellar.api.views.common import Link, Linker, View, isotime
from cellar.db.models import SecurityGroup, SecurityGroupRule


class RuleSummary(View):
    id: str
    protocol: str
    from_port: int
    to_port: int
    cidr: str


class SecurityGroupView(View):
    id: str
    name: str
    description: str
    instance_id: str | None
    rules: list[RuleSummary]
    links: list[Link]
    created: str | None


class SecurityGroupEnvelope(View):
    security_group: SecurityGroupView


class SecurityGroupList(View):
    security_groups: list[SecurityGroupView]


class RuleView(View):
    id: str
    security_group_id: str
    protocol: str
    from_port: int
    to_port: int
    cidr: str
    created: str | None


class RuleCreated(View):
    """Trove's shape (one rule), and cellar's list of every rule made (one per port)."""

    security_group_rule: RuleView
    security_group_rules: list[RuleView]


def rule_summary(row: SecurityGroupRule) -> RuleSummary:
    return RuleSummary(
        id=row.id,
        protocol=row.protocol,
        from_port=row.from_port,
        to_port=row.to_port,
        cidr=row.cidr,
    )


def security_group_view(
    group: SecurityGroup, rules: list[SecurityGroupRule], linker: Linker
) -> SecurityGroupView:
    return SecurityGroupView(
        id=group.id,
        name=group.name,
        description=group.description,
        instance_id=group.instance_id,
        rules=[rule_summary(r) for r in rules],
        links=linker.links(group.tenant_id, "security-groups", group.id)[:1],
        created=isotime(group.created),
    )


def rule_view(row: SecurityGroupRule) -> RuleView:
    return RuleView(
        id=row.id,
        security_group_id=row.group_id,
        protocol=row.protocol,
        from_port=row.from_port,
        to_port=row.to_port,
        cidr=row.cidr,
        created=isotime(row.created),
    )
