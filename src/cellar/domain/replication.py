"""Streaming replication as the control plane and the guests speak of it.

One model serves Trove's two doors: a cluster (`POST /clusters`) and a primary with
replicas made by `replica_of`. Each member's guest is told its place at prepare
(`ReplicationSpec`) and reports where its WAL stands (`ReplicationStatus`).

The replication role is not a superuser (REPLICATION LOGIN, plus the function grants
pg_rewind needs); its password is derived by the guest driver from the group's id and
stored nowhere. Each replica streams through a physical slot of its own on the primary,
named from its instance id, and the primary bounds what a slot may hold back
(`max_slot_wal_keep_size`), so a lagging replica can never fill the primary's volume.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

REPLICATION_USER = "cellar_replicator"


class Role(enum.Enum):
    PRIMARY = "primary"
    REPLICA = "replica"


def slot_name(instance_id: str) -> str:
    """The physical replication slot of a replica on its primary: `cellar_<id>` with only
    lowercase letters, digits and `_` (PostgreSQL's rule for slot names, 63 at most)."""
    return ("cellar_" + re.sub(r"[^a-z0-9_]", "_", instance_id.lower()))[:63]


@dataclass(frozen=True)
class ReplicationSpec:
    """A member's place in its group, given to its guest at prepare (and to `follow`).

    primary: set up the replication role, accept replication connections, keep slots.
    replica: copy the primary with `pg_basebackup` through slot `slot`, then stream from
    `primary_address:primary_port` as a hot standby (read-only).
    """

    role: Role
    password: str
    primary_address: str | None = None
    primary_port: int = 5432
    slot: str | None = None

    def __post_init__(self) -> None:
        if self.role is Role.REPLICA and (not self.primary_address or not self.slot):
            raise ValueError("a replica needs its primary's address and a slot")


@dataclass(frozen=True)
class ReplicaLag:
    """One slot on a primary and the standby streaming through it, if any."""

    slot: str
    active: bool
    # The standby's address and walsender state ("streaming", "catchup"), if connected.
    address: str | None
    state: str | None
    # Bytes of WAL the standby has not replayed yet (None: it never connected).
    lag_bytes: int | None


@dataclass(frozen=True)
class ReplicationStatus:
    """Where one member's WAL stands.

    `lsn`: on a primary its current write position, on a replica the last replayed one
    (as an integer: byte position in the WAL). `receive_lsn`: a replica's last received.
    `replicas`: on a primary, its slots."""

    role: Role
    lsn: int
    timeline: int
    receive_lsn: int | None = None
    replicas: tuple[ReplicaLag, ...] = ()


def lsn_to_int(text: str) -> int:
    """`'0/3000060'` -> 50331744, PostgreSQL's pg_lsn as a byte position."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def lsn_to_text(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"
