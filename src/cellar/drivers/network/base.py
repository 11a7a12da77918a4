"""The network service: security groups and their ingress rules (Neutron's role)."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cellar.drivers.base import InvalidRequest, ResourceNotFound


class SecurityGroupNotFound(ResourceNotFound):
    def __init__(self, group_id: str) -> None:
        super().__init__("Security group", group_id)
        self.group_id = group_id


class SecurityGroupRuleNotFound(ResourceNotFound):
    def __init__(self, rule_id: str) -> None:
        super().__init__("Security group rule", rule_id)
        self.rule_id = rule_id


class SecurityGroupInUse(InvalidRequest):
    def __init__(self, group_id: str, server_id: str) -> None:
        super().__init__(f"Security group {group_id} is in use by server {server_id}.")
        self.group_id = group_id


class InvalidRule(InvalidRequest):
    """A rule the service refuses: bad protocol, port range or CIDR, or a duplicate."""


@dataclass(frozen=True)
class SecurityGroupRule:
    id: str
    group_id: str
    protocol: str
    from_port: int
    to_port: int
    cidr: str


@dataclass(frozen=True)
class SecurityGroup:
    id: str
    name: str
    description: str = ""
    rules: tuple[SecurityGroupRule, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


class NetworkDriver(abc.ABC):
    name: str = "network"

    @abc.abstractmethod
    def list_security_groups(self) -> list[SecurityGroup]: ...

    @abc.abstractmethod
    def get_security_group(self, group_id: str) -> SecurityGroup: ...

    def find_security_group(self, name: str) -> SecurityGroup | None:
        matches = [g for g in self.list_security_groups() if g.name == name]
        return matches[0] if matches else None

    @abc.abstractmethod
    def create_security_group(self, *, name: str, description: str = "") -> SecurityGroup: ...

    @abc.abstractmethod
    def delete_security_group(self, group_id: str) -> None:
        """Delete a group; one still used by a server raises `SecurityGroupInUse`."""

    @abc.abstractmethod
    def create_security_group_rule(
        self, *, group_id: str, protocol: str, from_port: int, to_port: int, cidr: str
    ) -> SecurityGroupRule:
        """Add an ingress rule; an identical rule already there raises `InvalidRule`."""

    @abc.abstractmethod
    def delete_security_group_rule(self, rule_id: str) -> None: ...
