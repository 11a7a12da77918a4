"""Value objects that describe what an operation should build or change."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, NewType

InstanceId = NewType("InstanceId", str)
ProjectId = NewType("ProjectId", str)

RESOURCE_PREFIX = "cellar-"


def resource_name(instance_id: str) -> str:
    """The one name every cloud resource of an instance carries: creates look it up first."""
    return f"{RESOURCE_PREFIX}{instance_id}"


def instance_hostname(instance_id: str, dns_zone: str) -> str:
    """The DNS name of an instance: its resource name in the deployment's zone."""
    return f"{resource_name(instance_id)}.{dns_zone}"


def instance_id_from_name(name: str) -> str | None:
    """The owning instance id of a cloud resource named by `resource_name`, else None."""
    if name.startswith(RESOURCE_PREFIX):
        return name[len(RESOURCE_PREFIX) :]
    return None


@dataclass(frozen=True)
class FlavorSpec:
    id: str
    name: str
    ram_mb: int
    vcpus: int


@dataclass(frozen=True)
class RuleSpec:
    """One ingress rule: protocol, port range and source CIDR."""

    protocol: str
    from_port: int
    to_port: int
    cidr: str


@dataclass(frozen=True)
class DatabaseSpec:
    name: str
    character_set: str | None = None
    collate: str | None = None


@dataclass(frozen=True)
class UserSpec:
    name: str
    password: str
    databases: tuple[str, ...] = ()


@dataclass(frozen=True)
class InstanceSpec:
    """Everything needed to provision one instance; built once from the create request."""

    instance_id: str
    name: str
    project_id: str
    flavor: FlavorSpec
    volume_size_gb: int
    datastore: str
    datastore_version: str
    image: str
    ports: tuple[int, ...]
    allowed_cidrs: tuple[str, ...] = ("0.0.0.0/0",)
    databases: tuple[DatabaseSpec, ...] = ()
    users: tuple[UserSpec, ...] = ()
    dns_zone: str = "cellar.internal"
    extra: dict[str, str] = field(default_factory=dict)
    # Replication: the group (a cluster's id, or the primary's id for `replica_of`) whose
    # replication password the guest gets, and the primary this member copies (None for
    # the primary itself). Neither set: a lone instance.
    replication_group: str | None = None
    replica_of: str | None = None
    # Restore (`restorePoint`): the source's stanza, and its backup set's label and/or the
    # instant (ISO 8601 with its zone) to restore to. No stanza: a fresh instance.
    restore_stanza: str | None = None
    restore_label: str | None = None
    restore_time: str | None = None

    @property
    def resource_name(self) -> str:
        return resource_name(self.instance_id)

    @property
    def hostname(self) -> str:
        return instance_hostname(self.instance_id, self.dns_zone)

    def ingress_rules(self) -> tuple[RuleSpec, ...]:
        return tuple(
            RuleSpec("tcp", port, port, cidr) for cidr in self.allowed_cidrs for port in self.ports
        )


def spec_to_dict(spec: InstanceSpec) -> dict[str, Any]:
    """A JSON-safe form of the spec, stored with the provision job."""
    return asdict(spec)


def spec_from_dict(data: dict[str, Any]) -> InstanceSpec:
    values = dict(data)
    values["flavor"] = FlavorSpec(**values["flavor"])
    values["ports"] = tuple(values["ports"])
    values["allowed_cidrs"] = tuple(values["allowed_cidrs"])
    values["databases"] = tuple(DatabaseSpec(**d) for d in values.get("databases", ()))
    values["users"] = tuple(
        UserSpec(name=u["name"], password=u["password"], databases=tuple(u["databases"]))
        for u in values.get("users", ())
    )
    return InstanceSpec(**values)


def spec_passwords(spec: InstanceSpec) -> list[str]:
    """The users' passwords of `spec`, in the order of its users."""
    return [u.password for u in spec.users]


def without_passwords(spec: InstanceSpec) -> InstanceSpec:
    """`spec` with every user's password blanked: what a job may keep in the clear."""
    return replace(spec, users=tuple(replace(u, password="") for u in spec.users))


def with_passwords(spec: InstanceSpec, passwords: list[str]) -> InstanceSpec:
    """`spec` with its users' passwords (`spec_passwords`' order) put back."""
    if len(passwords) != len(spec.users):
        raise ValueError(f"{len(passwords)} passwords for {len(spec.users)} users")
    users = tuple(replace(u, password=p) for u, p in zip(spec.users, passwords, strict=True))
    return replace(spec, users=users)


def flavor_to_dict(flavor: FlavorSpec) -> dict[str, Any]:
    return asdict(flavor)


def flavor_from_dict(data: dict[str, Any]) -> FlavorSpec:
    return FlavorSpec(**data)


def rule_to_dict(rule: RuleSpec) -> dict[str, Any]:
    return asdict(rule)


def rule_from_dict(data: dict[str, Any]) -> RuleSpec:
    return RuleSpec(**data)
