"""The fake network service: security groups and their ingress rules, validated as
Neutron validates them (tcp/udp/icmp, ports 1..65535, a well-formed CIDR, no duplicate)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from contextlib import AbstractContextManager

from cellar.domain.rules import normalized_rule
from cellar.drivers.fake.cloud import FakeCloud
from cellar.drivers.fake.store import GROUP, RULE, Row, Tx
from cellar.drivers.network.base import (
    InvalidRule,
    NetworkDriver,
    SecurityGroup,
    SecurityGroupInUse,
    SecurityGroupNotFound,
    SecurityGroupRule,
    SecurityGroupRuleNotFound,
)


def require_group(tx: Tx, group_id: str) -> Row:
    row = tx.get(GROUP, group_id)
    if row is None:
        raise SecurityGroupNotFound(group_id)
    return row


def _to_rule(row: Row) -> SecurityGroupRule:
    data = row.data
    return SecurityGroupRule(
        id=row.id,
        group_id=str(row.parent),
        protocol=data["protocol"],
        from_port=data["from_port"],
        to_port=data["to_port"],
        cidr=data["cidr"],
    )


def _to_group(row: Row, rules: list[Row]) -> SecurityGroup:
    return SecurityGroup(
        id=row.id,
        name=row.name,
        description=row.data["description"],
        rules=tuple(_to_rule(rule) for rule in rules),
    )


def _checked_rule(protocol: str, from_port: int, to_port: int, cidr: str) -> dict[str, object]:
    """The rule's data, its CIDR normalised (as Neutron does); `InvalidRule` if refused."""
    try:
        return normalized_rule(protocol, from_port, to_port, cidr)
    except ValueError as exc:
        raise InvalidRule(str(exc)) from None


class FakeNetwork(NetworkDriver):
    def __init__(self, cloud: FakeCloud) -> None:
        self._cloud = cloud

    def _call(self, method: str) -> AbstractContextManager[Tx]:
        return self._cloud.call(f"network.{method}")

    def list_security_groups(self) -> list[SecurityGroup]:
        with self._call("list_security_groups") as tx:
            rules: dict[str | None, list[Row]] = defaultdict(list)
            for rule in tx.all(RULE):
                rules[rule.parent].append(rule)
            return [_to_group(row, rules[row.id]) for row in tx.all(GROUP)]

    def get_security_group(self, group_id: str) -> SecurityGroup:
        with self._call("get_security_group") as tx:
            return _to_group(require_group(tx, group_id), tx.children(RULE, group_id))

    def find_security_group(self, name: str) -> SecurityGroup | None:
        with self._call("find_security_group") as tx:
            rows = tx.by_name(GROUP, name)
            return _to_group(rows[0], tx.children(RULE, rows[0].id)) if rows else None

    def create_security_group(self, *, name: str, description: str = "") -> SecurityGroup:
        with self._call("create_security_group") as tx:
            row = tx.insert(Row(str(uuid.uuid4()), GROUP, name, None, {"description": description}))
            return _to_group(row, [])

    def delete_security_group(self, group_id: str) -> None:
        with self._call("delete_security_group") as tx:
            require_group(tx, group_id)
            server_id = tx.server_using(group_id)
            if server_id is not None:
                raise SecurityGroupInUse(group_id, server_id)
            tx.delete_children(RULE, group_id)
            tx.delete(group_id)

    def create_security_group_rule(
        self, *, group_id: str, protocol: str, from_port: int, to_port: int, cidr: str
    ) -> SecurityGroupRule:
        with self._call("create_security_group_rule") as tx:
            require_group(tx, group_id)
            data = _checked_rule(protocol, from_port, to_port, cidr)
            if any(rule.data == data for rule in tx.children(RULE, group_id)):
                raise InvalidRule(
                    f"Security group {group_id} already has the rule "
                    f"{protocol} {from_port}..{to_port} from {data['cidr']}."
                )
            return _to_rule(tx.insert(Row(str(uuid.uuid4()), RULE, "", group_id, data)))

    def delete_security_group_rule(self, rule_id: str) -> None:
        with self._call("delete_security_group_rule") as tx:
            if tx.get(RULE, rule_id) is None:
                raise SecurityGroupRuleNotFound(rule_id)
            tx.delete(rule_id)
