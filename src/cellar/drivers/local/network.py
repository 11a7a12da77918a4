"""The local network service: security groups of the local cloud, loaded as nftables
rules into the namespaces of the servers that use them (`cellar.localcloud.firewall`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from cellar.domain.errors import CellarError
from cellar.drivers.base import DriverError, ServiceUnavailable
from cellar.drivers.network.base import (
    InvalidRule,
    NetworkDriver,
    SecurityGroup,
    SecurityGroupInUse,
    SecurityGroupNotFound,
    SecurityGroupRule,
    SecurityGroupRuleNotFound,
)
from cellar.localcloud.firewall import (
    Group,
    GroupInUse,
    GroupMissing,
    Rule,
    RuleMissing,
    RuleRefused,
    SecurityGroups,
)
from cellar.localcloud.system import LocalCloudError


def group_refusal(exc: LocalCloudError) -> CellarError | None:
    """The driver error for the local cloud's refusal of a group operation, if it is one."""
    if isinstance(exc, GroupMissing):
        return SecurityGroupNotFound(exc.group_id)
    if isinstance(exc, RuleMissing):
        return SecurityGroupRuleNotFound(exc.rule_id)
    if isinstance(exc, GroupInUse):
        return SecurityGroupInUse(exc.group_id, exc.server_id)
    if isinstance(exc, RuleRefused):
        return InvalidRule(exc.message)
    return None


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except LocalCloudError as exc:
        raise (group_refusal(exc) or DriverError(exc.message)) from exc
    except sqlite3.OperationalError as exc:
        raise ServiceUnavailable(f"The local cloud's state is busy: {exc}.") from exc


def _to_rule(rule: Rule) -> SecurityGroupRule:
    return SecurityGroupRule(
        id=rule.id,
        group_id=rule.group_id,
        protocol=rule.protocol,
        from_port=rule.from_port,
        to_port=rule.to_port,
        cidr=rule.cidr,
    )


def _to_group(group: Group) -> SecurityGroup:
    return SecurityGroup(
        id=group.id,
        name=group.name,
        description=group.description,
        rules=tuple(_to_rule(rule) for rule in group.rules),
    )


class LocalNetwork(NetworkDriver):
    def __init__(self, groups: SecurityGroups) -> None:
        self._groups = groups

    def list_security_groups(self) -> list[SecurityGroup]:
        with _translated():
            return [_to_group(group) for group in self._groups.all()]

    def get_security_group(self, group_id: str) -> SecurityGroup:
        with _translated():
            return _to_group(self._groups.get(group_id))

    def find_security_group(self, name: str) -> SecurityGroup | None:
        with _translated():
            group = self._groups.find(name)
        return None if group is None else _to_group(group)

    def create_security_group(self, *, name: str, description: str = "") -> SecurityGroup:
        with _translated():
            return _to_group(self._groups.create(name=name, description=description))

    def delete_security_group(self, group_id: str) -> None:
        with _translated():
            self._groups.delete(group_id)

    def create_security_group_rule(
        self, *, group_id: str, protocol: str, from_port: int, to_port: int, cidr: str
    ) -> SecurityGroupRule:
        with _translated():
            rule = self._groups.add_rule(
                group_id=group_id,
                protocol=protocol,
                from_port=from_port,
                to_port=to_port,
                cidr=cidr,
            )
        return _to_rule(rule)

    def delete_security_group_rule(self, rule_id: str) -> None:
        with _translated():
            self._groups.delete_rule(rule_id)
