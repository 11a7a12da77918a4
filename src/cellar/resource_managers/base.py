"""The resource-manager interface: every infrastructure operation of the task manager.

A resource manager turns an operation into a TaskFlow flow of idempotent tasks with
reverts; the task manager runs and persists the flow. Every operation raises
`OperationIsNotSupported` (HTTP 501 at the API) until a manager overrides it.

Guest tasks (restart, configuration, backups, users) are not here: they are common to
every manager (`resource_managers.common`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

from taskflow.flow import Flow

from cellar.config import Settings
from cellar.domain.errors import OperationIsNotSupported
from cellar.domain.specs import FlavorSpec, InstanceSpec, RuleSpec
from cellar.domain.status import ServerStatus, ServiceStatus
from cellar.drivers.registry import Services
from cellar.orchestration.stacks import StackService


class Operation(enum.Enum):
    """The operations of the interface; the value is the method's name."""

    PROVISION_INSTANCE = "provision_instance"
    RESIZE_FLAVOR = "resize_flavor"
    RESIZE_VOLUME = "resize_volume"
    REBOOT = "reboot"
    DELETE_INSTANCE = "delete_instance"
    CREATE_SECURITY_GROUP = "create_security_group"
    ADD_SECURITY_GROUP_RULE = "add_security_group_rule"
    UPDATE_SECURITY_GROUP_RULE_CIDR = "update_security_group_rule_cidr"
    DELETE_SECURITY_GROUP_RULE = "delete_security_group_rule"
    DELETE_SECURITY_GROUP = "delete_security_group"
    CREATE_DNS_RECORD = "create_dns_record"
    DELETE_DNS_RECORD = "delete_dns_record"
    PROVISION_CLUSTER = "provision_cluster"
    GROW_CLUSTER = "grow_cluster"
    SHRINK_CLUSTER = "shrink_cluster"
    DELETE_CLUSTER = "delete_cluster"


@dataclass(frozen=True)
class InstanceRecord:
    """What a resource manager may read of an instance (the task manager owns the row)."""

    id: str
    name: str
    flavor_id: str
    volume_size: int
    provisioning_engine: str
    compute_instance_id: str | None
    volume_id: str | None
    security_group_id: str | None
    dns_record_id: str | None
    stack_id: str | None
    addresses: tuple[str, ...]
    task: str
    server_status: ServerStatus | None
    service_status: ServiceStatus
    created: datetime
    cluster_id: str | None = None
    replica_of: str | None = None
    project_id: str = ""


@dataclass(frozen=True)
class RuleRecord:
    id: str
    protocol: str
    from_port: int
    to_port: int
    cidr: str
    provider_id: str | None

    @property
    def spec(self) -> RuleSpec:
        return RuleSpec(self.protocol, self.from_port, self.to_port, self.cidr)


class InstanceStore(Protocol):
    """The control plane's records, as resource managers see them.

    Implemented by the task manager over the database; resource managers never import
    `cellar.db`. Every method commits on its own, so a recorded id survives a crash.
    """

    def get(self, instance_id: str) -> InstanceRecord: ...

    def cluster_members(self, cluster_id: str) -> tuple[InstanceRecord, ...]:
        """The cluster's live members, the primary first."""

    def record_resources(self, instance_id: str, **ids: Any) -> None:
        """Store cloud ids as soon as they exist: compute_instance_id, volume_id,
        security_group_id, dns_record_id, addresses, stack_id, hostname."""

    def record_cluster_stack(self, cluster_id: str, stack_id: str | None) -> None:
        """The stack of an orchestrated cluster, on the cluster's row."""

    def set_server_status(self, instance_id: str, status: ServerStatus | None) -> None: ...

    def set_service_status(self, instance_id: str, status: ServiceStatus) -> None: ...

    def set_flavor(self, instance_id: str, flavor_id: str) -> None: ...

    def set_volume_size(self, instance_id: str, size_gb: int) -> None: ...

    def is_deleting(self, instance_id: str) -> bool:
        """True once a delete was asked: running flows stop at their next step."""

    def record_group_rules(self, instance_id: str, rules: list[tuple[RuleSpec, str]]) -> None:
        """Give the instance's rule rows the cloud ids of the rules made for them."""

    def rule(self, rule_id: str) -> RuleRecord: ...

    def rule_provider_id(self, rule_id: str) -> str | None: ...

    def set_rule_provider_id(self, rule_id: str, provider_id: str | None) -> None: ...

    def update_rule(self, rule_id: str, *, cidr: str, provider_id: str | None) -> None: ...


@dataclass(frozen=True)
class ManagerContext:
    """What every manager is built with."""

    settings: Settings
    services: Services
    store: InstanceStore
    sleep: Callable[[float], None]
    # The orchestration service (embedded engine or Heat), for managers that use stacks.
    stacks: StackService | None = None


class ResourceManager:
    """Base of every manager: each operation is unsupported until overridden."""

    name: ClassVar[str] = "base"
    # Operations it implements for a lone instance but not for a cluster's member.
    not_for_members: ClassVar[frozenset[Operation]] = frozenset()

    def __init__(self, ctx: ManagerContext) -> None:
        self.ctx = ctx

    @classmethod
    def supports(
        cls, operation: Operation, provisioning_engine: str | None = None, *, member: bool = False
    ) -> bool:
        """Whether this manager implements `operation` (for an instance of that engine;
        `member`: one of a cluster)."""
        if member and operation in cls.not_for_members:
            return False
        mine = getattr(cls, operation.value)
        return bool(mine is not getattr(ResourceManager, operation.value))

    @classmethod
    def require(
        cls, operation: Operation, provisioning_engine: str | None = None, *, member: bool = False
    ) -> None:
        if not cls.supports(operation, provisioning_engine, member=member):
            what = f"{operation.value} of a cluster member" if member else operation.value
            raise OperationIsNotSupported(what, cls.name)

    def _unsupported(self, operation: Operation) -> Flow:
        raise OperationIsNotSupported(operation.value, self.name)

    # Instances.
    def provision_instance(self, spec: InstanceSpec) -> Flow:
        """Security group, volume, server, guest prepare, DNS; ACTIVE when the guest is."""
        return self._unsupported(Operation.PROVISION_INSTANCE)

    def resize_flavor(self, instance_id: str, flavor: FlavorSpec) -> Flow:
        return self._unsupported(Operation.RESIZE_FLAVOR)

    def resize_volume(self, instance_id: str, size_gb: int) -> Flow:
        """Grow the volume online; a shrink is refused before anything is touched."""
        return self._unsupported(Operation.RESIZE_VOLUME)

    def reboot(self, instance_id: str) -> Flow:
        return self._unsupported(Operation.REBOOT)

    def delete_instance(self, instance_id: str) -> Flow:
        """Remove everything the instance owns, from any state (BUILD and ERROR too)."""
        return self._unsupported(Operation.DELETE_INSTANCE)

    # Security groups and rules.
    def create_security_group(self, instance_id: str, rules: tuple[RuleSpec, ...]) -> Flow:
        return self._unsupported(Operation.CREATE_SECURITY_GROUP)

    def add_security_group_rule(self, instance_id: str, rule_id: str, rule: RuleSpec) -> Flow:
        return self._unsupported(Operation.ADD_SECURITY_GROUP_RULE)

    def update_security_group_rule_cidr(self, instance_id: str, rule_id: str, cidr: str) -> Flow:
        return self._unsupported(Operation.UPDATE_SECURITY_GROUP_RULE_CIDR)

    def delete_security_group_rule(self, instance_id: str, rule_id: str) -> Flow:
        return self._unsupported(Operation.DELETE_SECURITY_GROUP_RULE)

    def delete_security_group(self, instance_id: str) -> Flow:
        return self._unsupported(Operation.DELETE_SECURITY_GROUP)

    # DNS.
    def create_dns_record(self, instance_id: str) -> Flow:
        return self._unsupported(Operation.CREATE_DNS_RECORD)

    def delete_dns_record(self, instance_id: str) -> Flow:
        return self._unsupported(Operation.DELETE_DNS_RECORD)

    # Clusters.
    def provision_cluster(self, cluster_id: str, members: tuple[InstanceSpec, ...]) -> Flow:
        return self._unsupported(Operation.PROVISION_CLUSTER)

    def grow_cluster(self, cluster_id: str, members: tuple[InstanceSpec, ...]) -> Flow:
        return self._unsupported(Operation.GROW_CLUSTER)

    def shrink_cluster(self, cluster_id: str, instance_ids: tuple[str, ...]) -> Flow:
        return self._unsupported(Operation.SHRINK_CLUSTER)

    def delete_cluster(self, cluster_id: str) -> Flow:
        return self._unsupported(Operation.DELETE_CLUSTER)
