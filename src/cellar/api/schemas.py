"""What a client sends: request bodies, validated here, field by field.

Each model names its fields as Trove's API does (`flavorRef`), refuses fields it does
not know (a silently ignored `replica_of` would be worse than a 400), and does not
coerce types except where Trove accepts both (a volume size may be `2` or `"2"`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from cellar.domain.accounts import reserved_database, reserved_user

MAX_VOLUME_SIZE_GB = 1000
MAX_CIDRS = 50
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_WORD = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _volume_size(value: Any) -> int:
    ok = (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, str) and value.isascii() and value.isdigit()
    )
    if not ok or not 1 <= int(value) <= MAX_VOLUME_SIZE_GB:
        raise PydanticCustomError(
            "volume_size", f"must be an integer between 1 and {MAX_VOLUME_SIZE_GB}"
        )
    return int(value)


def _reference(value: Any) -> str:
    """An id given as a string, an integer or a link (`.../flavors/2`): the id."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip().rstrip("/").rsplit("/", 1)[-1]
    raise PydanticCustomError("reference", "must be a non-empty string or an integer id")


def _identifier(value: str) -> str:
    if not _IDENT.fullmatch(value):
        raise PydanticCustomError(
            "identifier",
            "must start with a letter or underscore and hold only letters, digits and "
            "underscores (at most 63 characters)",
        )
    return value


def _not_reserved(reserved: Callable[[str], bool]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if reserved(value):
            raise PydanticCustomError(
                "reserved", f"{value!r} is reserved for the datastore's own use"
            )
        return value

    return check


def _word(value: str) -> str:
    if not _WORD.fullmatch(value):
        raise PydanticCustomError(
            "word", "must be 1 to 64 letters, digits, dots, dashes or underscores"
        )
    return value


def _cidr(value: Any) -> str:
    """A network in CIDR form, IPv4 or IPv6; a bare address is a /32 (or /128)."""
    if not isinstance(value, str):
        raise PydanticCustomError("cidr", "must be a CIDR string such as 10.0.0.0/24")
    try:
        return str(ipaddress.ip_network(value.strip(), strict=True))
    except ValueError:
        pass
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise PydanticCustomError("cidr", f"{value!r} is not a CIDR such as 10.0.0.0/24") from None
    raise PydanticCustomError(
        "cidr", f"{value!r} has host bits set; did you mean {str(network)!r}?"
    )


def _password(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("password", "must not contain NUL characters")
    return value


VolumeSize = Annotated[int, BeforeValidator(_volume_size)]
Reference = Annotated[str, BeforeValidator(_reference)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Identifier = Annotated[str, AfterValidator(_identifier)]
Word = Annotated[str, AfterValidator(_word)]
UserName = Annotated[Identifier, AfterValidator(_not_reserved(reserved_user))]
DatabaseName = Annotated[Identifier, AfterValidator(_not_reserved(reserved_database))]
Cidr = Annotated[str, BeforeValidator(_cidr)]
Password = Annotated[
    str, StringConstraints(min_length=1, max_length=255), AfterValidator(_password)
]


def _no_duplicates(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise PydanticCustomError("duplicate", f"{what} {name!r} is given twice")
        seen.add(name)


def _no_volume_type(value: Any) -> None:
    """Trove's `volume.type` names a Cinder volume type; python-troveclient always sends
    the key (`null` when none is chosen). No cloud of cellar's has volume types."""
    if value is not None:
        raise PydanticCustomError(
            "volume_type", f"volume type {value!r} does not exist: leave it out or null"
        )


class VolumeCreate(StrictModel):
    size: VolumeSize
    type: Annotated[None, BeforeValidator(_no_volume_type)] = None


class DatastoreRef(StrictModel):
    type: Word | None = None
    version: Word | None = None
    # Trove's (Wallaby on), telling apart versions of one name; a version's number here is
    # its name, so it must match.
    version_number: Word | None = None


class DatabaseCreate(StrictModel):
    name: DatabaseName
    character_set: Word | None = None
    collate: Word | None = None


class DatabaseRef(StrictModel):
    name: Identifier


class UserCreate(StrictModel):
    name: UserName
    password: Password
    databases: list[DatabaseRef] = Field(default_factory=list)

    @field_validator("databases")
    @classmethod
    def _distinct(cls, value: list[DatabaseRef]) -> list[DatabaseRef]:
        _no_duplicates([d.name for d in value], "database")
        return value


class Access(StrictModel):
    allowed_cidrs: Annotated[list[Cidr], Field(max_length=MAX_CIDRS)] | None = None
    is_public: bool = False

    @field_validator("allowed_cidrs")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        _no_duplicates(value or [], "CIDR")
        return value


# Replicas one request may add (Trove's `max_replicas_per_master` is 3 by default; a
# PostgreSQL primary here keeps 10 WAL senders and 10 slots).
MAX_REPLICAS = 8


class RestorePoint(StrictModel):
    """Trove's `restorePoint` (`backupRef`), and beyond Trove a point in time: a
    `restoreTime` (RFC 3339) with a `backupRef` or with the source `instance` (which may
    be deleted: its stanza is kept)."""

    backupRef: Reference | None = None
    instance: Reference | None = None
    restoreTime: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


class InstanceCreate(StrictModel):
    """An instance, or with `replica_of` (an instance's id or name) `replica_count`
    replicas of it (Trove's door to replication): a replica without `flavorRef` or
    `volume` copies its primary's."""

    name: Name
    flavorRef: Reference | None = None
    volume: VolumeCreate | None = None
    datastore: DatastoreRef | None = None
    databases: list[DatabaseCreate] = Field(default_factory=list)
    users: list[UserCreate] = Field(default_factory=list)
    access: Access | None = None
    replica_of: Reference | None = None
    replica_count: Annotated[int, Field(ge=1, le=MAX_REPLICAS, strict=True)] | None = None
    restorePoint: RestorePoint | None = None
    configuration: Reference | None = None

    @field_validator("databases")
    @classmethod
    def _distinct_databases(cls, value: list[DatabaseCreate]) -> list[DatabaseCreate]:
        _no_duplicates([d.name for d in value], "database")
        return value

    @field_validator("users")
    @classmethod
    def _distinct_users(cls, value: list[UserCreate]) -> list[UserCreate]:
        _no_duplicates([u.name for u in value], "user")
        return value


class InstanceCreateRequest(StrictModel):
    instance: InstanceCreate


class InstanceUpdate(StrictModel):
    name: Name | None = None
    replica_of: Reference | None = None
    configuration: Reference | None = None


class InstanceUpdateRequest(StrictModel):
    instance: InstanceUpdate


class ResizeVolume(StrictModel):
    size: VolumeSize


class Resize(StrictModel):
    """`{"flavorRef": "2"}` or `{"volume": {"size": 4}}`: exactly one."""

    flavorRef: Reference | None = None
    volume: ResizeVolume | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Resize:
        if (self.flavorRef is None) == (self.volume is None):
            raise PydanticCustomError("resize", "give exactly one of flavorRef or volume")
        return self


class NoArguments(StrictModel):
    """`{"restart": {}}`, `{"reboot": {}}`."""


class ResetStatus(StrictModel):
    """`{"reset_status": {}}`, or with Trove's `force_delete` key (its value is not read)."""

    force_delete: Any = None


class RuleCreate(StrictModel):
    group_id: Name
    cidr: Cidr


class RuleCreateRequest(StrictModel):
    security_group_rule: RuleCreate


class RuleUpdate(StrictModel):
    cidr: Cidr


class RuleUpdateRequest(StrictModel):
    security_group_rule: RuleUpdate


MAX_CLUSTER_MEMBERS = 16


class ClusterMember(StrictModel):
    """One member of `POST /clusters` or of a grow: its own flavor and volume."""

    flavorRef: Reference
    volume: VolumeCreate
    name: Name | None = None
    # Trove's member `type` (a role hint for other datastores); PostgreSQL members are all
    # of one kind, the first being the primary.
    type: Word | None = None


def _distinct_member_names(members: list[ClusterMember]) -> list[ClusterMember]:
    _no_duplicates([m.name for m in members if m.name is not None], "member name")
    return members


Members = Annotated[
    list[ClusterMember],
    Field(min_length=1, max_length=MAX_CLUSTER_MEMBERS),
    AfterValidator(_distinct_member_names),
]


class ClusterCreate(StrictModel):
    name: Name
    datastore: DatastoreRef | None = None
    instances: Members
    access: Access | None = None


class ClusterCreateRequest(StrictModel):
    cluster: ClusterCreate


class ShrinkMember(StrictModel):
    id: Name


class ClusterAction(StrictModel):
    """`{"grow": [...]}` or `{"shrink": [{"id"}]}`: exactly one."""

    grow: Members | None = None
    shrink: Annotated[list[ShrinkMember], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ClusterAction:
        if (self.grow is None) == (self.shrink is None):
            raise PydanticCustomError("action", "give exactly one of grow or shrink")
        return self


class BackupCreate(StrictModel):
    """Trove's `POST /backups` body, as python-troveclient sends it (`incremental` 0/1)."""

    name: Name
    instance: Reference
    description: Annotated[str, StringConstraints(max_length=1024)] | None = None
    incremental: bool | int | None = None
    parent_id: Reference | None = None


class BackupCreateRequest(StrictModel):
    backup: BackupCreate


class Retention(StrictModel):
    """How many full backups the engine keeps (`count`), or for how many days (`days`)."""

    count: Annotated[int, Field(ge=1, le=1000, strict=True)] | None = None
    days: Annotated[int, Field(ge=1, le=3650, strict=True)] | None = None

    @model_validator(mode="after")
    def _one(self) -> Retention:
        if (self.count is None) == (self.days is None):
            raise PydanticCustomError("retention", "give either count or days")
        return self


class BackupScheduleSet(StrictModel):
    interval_hours: Annotated[float, Field(gt=0, le=24 * 35)]
    retention: Retention
    incremental: bool = False


class BackupScheduleRequest(StrictModel):
    backup_schedule: BackupScheduleSet


MAX_QUOTA = 2**31 - 1


class QuotaUpdateRequest(StrictModel):
    """Trove's `PUT /mgmt/quotas/{project}`: `{"quotas": {"instances": 5}}`; a null limit
    is skipped, as Trove does."""

    quotas: dict[str, Annotated[int, Field(strict=True, le=MAX_QUOTA)] | None]
