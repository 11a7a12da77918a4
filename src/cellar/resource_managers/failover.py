"""Switchover and failover of a replication group: guest tasks plus a fence, the same
under every resource manager (the members' servers, volumes and stacks are untouched).

Switchover (`promote_to_replica_source` on a replica), planned, no committed transaction
lost: the old primary is stopped cleanly (its last WAL record is its shutdown
checkpoint), the candidate replays up to that record, is promoted, and the old primary
and the other replicas follow it (the old primary through `pg_rewind` where its WAL
went further than the candidate's). Until the candidate is promoted the switchover can
be undone: its revert starts the old primary again; once promoted, never (two primaries
must never take writes).

Failover (`eject_replica_source` on a dead primary, or automatic): the old primary is
fenced first (its security group stops letting anyone in: neither clients nor replicas
reach it, so it can take no more writes even if it comes back), then the most advanced
replica (the highest received WAL position) is promoted and the others follow it. What
the old primary had that no replica received is lost: the window is recorded in the
cluster's events as an LSN difference, when the last position of the old primary is
known.

Each step names the member it acts on and is idempotent: a resumed job repeats it safely.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from taskflow.patterns import linear_flow

from cellar.domain.clusters import Endpoints
from cellar.domain.errors import CellarError
from cellar.domain.replication import ReplicationSpec, ReplicationStatus, Role, lsn_to_text
from cellar.domain.replication import slot_name as replica_slot
from cellar.domain.status import ServiceStatus
from cellar.drivers.base import DriverError, ResourceNotFound
from cellar.drivers.network.base import SecurityGroup
from cellar.resource_managers.base import ManagerContext
from cellar.resource_managers.cluster_steps import (
    DropReplicationSlot,
    RevokePeerAccess,
    UpdateEndpoints,
)
from cellar.resource_managers.common import CellarTask, StopDatastore


def _status(t: CellarTask, instance_id: str) -> ReplicationStatus:
    status: ReplicationStatus = t.call(t.services.guest.replication_status, instance_id)
    return status


def _is_primary(t: CellarTask, instance_id: str) -> bool | None:
    """Whether the member's guest says it is a primary; None when it cannot be asked."""
    try:
        return _status(t, instance_id).role is Role.PRIMARY
    except (CellarError, DriverError):
        return None


class _GroupStep(CellarTask):
    def __init__(
        self, ctx: ManagerContext, instance_id: str, cluster_id: str, port: int, *, name: str,
        provides: str | None = None,
    ) -> None:  # fmt: skip
        super().__init__(ctx, instance_id, name=name, provides=provides)
        self.cluster_id = cluster_id
        self.port = port

    def name_of(self, instance_id: str) -> str:
        return self.ctx.store.get(instance_id).name

    def follow(self, member: str, primary: str) -> None:
        """`member` streams from `primary` (its own slot there), and the rows say so."""
        address = self.ctx.store.get(primary).addresses
        if not address:
            raise CellarError(f"The new primary {primary} has no address.")
        spec = ReplicationSpec(
            Role.REPLICA,
            self.services.guest.replication_password(self.cluster_id),
            primary_address=address[0],
            primary_port=self.port,
            slot=replica_slot(member),
        )
        self.call(self.services.guest.follow, member, spec)
        self.ctx.store.record_resources(member, replica_of_id=primary)
        guest = self.services.guest
        self.wait_for(
            f"member {member} to run as a standby",
            lambda: guest.status(member),
            lambda s: s.service is ServiceStatus.RUNNING,
            failed=lambda s: s.error if s.service is ServiceStatus.FAILED else None,
            timeout_s=self.ctx.settings.guest_timeout_s,
        )
        self.ctx.store.set_service_status(member, ServiceStatus.RUNNING)


# Switchover.


# A switchover waits, writes stopped, for its candidate to replay what the old primary
# wrote: it starts only when the candidate streams and is at most this far behind.
SWITCHOVER_MAX_LAG_BYTES = 64 << 20


class CheckCandidate(_GroupStep):
    """Before anything stops: the candidate streams from the primary, close behind."""

    def __init__(
        self, ctx: ManagerContext, candidate: str, old: str, cluster_id: str, port: int, *,
        name: str,
    ) -> None:  # fmt: skip
        super().__init__(ctx, candidate, cluster_id, port, name=name)
        self.old = old

    def execute(self) -> str:
        if _is_primary(self, self.instance_id):
            return "the candidate is the primary already"  # a resumed job
        if _is_primary(self, self.old) is False:
            return "the old primary is stopped already"  # a resumed job
        slot = replica_slot(self.instance_id)
        found = [r for r in _status(self, self.old).replicas if r.slot == slot]
        lag = found[0].lag_bytes if found and found[0].active else None
        if lag is None:
            raise CellarError(
                f"{self.name_of(self.instance_id)} is not streaming from the primary: "
                "it cannot take over without losing what it has not received"
            )
        if lag > SWITCHOVER_MAX_LAG_BYTES:
            raise CellarError(
                f"{self.name_of(self.instance_id)} is {lag} bytes behind the primary (at most "
                f"{SWITCHOVER_MAX_LAG_BYTES} for a switchover): try again once it caught up"
            )
        return f"{self.name_of(self.instance_id)} streams, {lag} bytes behind"


class StopOldPrimary(StopDatastore):
    """A clean stop: every committed transaction is in the WAL before its last record.
    Its revert starts the old primary again, unless the candidate may have been promoted
    (it is, or it cannot be asked): then it stays down, and the fault says so."""

    def __init__(self, ctx: ManagerContext, old: str, candidate: str, *, name: str) -> None:
        super().__init__(ctx, old, name=name)
        self.candidate = candidate

    def execute(self) -> None:
        if not _is_primary(self, self.candidate):  # else a resumed job, promoted already
            super().execute()

    def revert(self, *args: Any, **kwargs: Any) -> None:
        if _is_primary(self, self.candidate) is False:
            super().revert(*args, **kwargs)


class CatchUp(_GroupStep):
    """The candidate has replayed everything the old primary wrote before it stopped."""

    def __init__(
        self, ctx: ManagerContext, candidate: str, old: str, cluster_id: str, port: int, *,
        name: str,
    ) -> None:  # fmt: skip
        super().__init__(ctx, candidate, cluster_id, port, name=name)
        self.old = old

    def execute(self) -> str:
        if _is_primary(self, self.instance_id):
            return "the candidate is the primary already"
        target = self.call(self.services.guest.stopped_lsn, self.old)
        status = self.wait_for(
            f"replica {self.instance_id} to replay up to {lsn_to_text(target)}",
            lambda: self.services.guest.replication_status(self.instance_id),
            lambda s: s.lsn >= target,
            timeout_s=self.ctx.settings.guest_timeout_s,
        )
        return (
            f"{self.name_of(self.instance_id)} replayed up to {lsn_to_text(status.lsn)}, past "
            f"the old primary's last record at {lsn_to_text(target)}: no transaction lost"
        )


class Promote(_GroupStep):
    """The candidate takes writes; the rows name it the primary, and the old primary its
    replica (the endpoints follow the rows)."""

    def __init__(
        self, ctx: ManagerContext, instance_id: str, cluster_id: str, port: int, *,
        old: str | None, name: str,
    ) -> None:  # fmt: skip
        super().__init__(ctx, instance_id, cluster_id, port, name=name)
        self.old = old

    def execute(self, candidate: str | None = None) -> str:
        iid = candidate or self.instance_id
        if not _is_primary(self, iid):
            self.call(self.services.guest.promote, iid)
        self.ctx.store.record_resources(iid, replica_of_id=None)
        if self.old is not None:
            self.ctx.store.record_resources(self.old, replica_of_id=iid)
        status = _status(self, iid)
        return (
            f"{self.name_of(iid)} is the primary, from LSN {lsn_to_text(status.lsn)} "
            f"on timeline {status.timeline}"
        )


class FollowNewPrimary(_GroupStep):
    """A member (a replica, or the old primary, rewound) streams from the new primary."""

    def __init__(
        self, ctx: ManagerContext, member: str, primary: str, cluster_id: str, port: int, *,
        name: str,
    ) -> None:  # fmt: skip
        super().__init__(ctx, member, cluster_id, port, name=name)
        self.primary = primary

    def execute(self) -> None:
        self.follow(self.instance_id, self.primary)


class DropStaleSlots(_GroupStep):
    """The old primary's slots would hold WAL on a standby for replicas that stream from
    elsewhere now: dropped (best effort: `max_slot_wal_keep_size` bounds them anyway)."""

    def __init__(
        self, ctx: ManagerContext, old: str, members: Sequence[str], cluster_id: str, port: int,
        *, name: str,
    ) -> None:  # fmt: skip
        super().__init__(ctx, old, cluster_id, port, name=name)
        self.members = tuple(members)

    def execute(self) -> None:
        for member in self.members:
            with contextlib.suppress(CellarError, DriverError):
                self.services.guest.drop_replication_slot(self.instance_id, replica_slot(member))


def switchover_flow(
    ctx: ManagerContext, cluster_id: str, args: dict[str, Any], names: Endpoints | None = None
) -> linear_flow.Flow:
    candidate, old, port = args["candidate"], args["old_primary"], int(args["port"])
    replicas: list[str] = list(args.get("replicas") or ())
    at = {iid: f"{ctx.store.get(iid).name}:" for iid in (candidate, old, *replicas)}
    flow = linear_flow.Flow("switchover").add(
        CheckCandidate(ctx, candidate, old, cluster_id, port, name=f"{at[candidate]}check"),
        StopOldPrimary(ctx, old, candidate, name=f"{at[old]}datastore.stop"),
        CatchUp(ctx, candidate, old, cluster_id, port, name=f"{at[candidate]}wal.catch_up"),
        Promote(ctx, candidate, cluster_id, port, old=old, name=f"{at[candidate]}promote"),
        UpdateEndpoints(ctx, cluster_id, names, name="endpoints.update"),
        FollowNewPrimary(ctx, old, candidate, cluster_id, port, name=f"{at[old]}follow"),
    )
    for replica in replicas:
        flow.add(
            FollowNewPrimary(ctx, replica, candidate, cluster_id, port, name=f"{at[replica]}follow")
        )
    return flow.add(
        DropStaleSlots(
            ctx, old, [old, candidate, *replicas], cluster_id, port, name=f"{at[old]}slots.drop"
        ),
    )


# Failover.


class Fence(_GroupStep):
    """Nobody reaches the old primary any more: every ingress rule of its security group
    is removed (what the user allowed included; the member is shown in ERROR, to be shrunk
    away). A server that comes back then takes no writes and feeds no replica."""

    def execute(self) -> str:
        group_id = self.ctx.store.get(self.instance_id).security_group_id
        if not group_id:
            return "the old primary has no security group: nothing reaches it"
        net = self.services.network
        try:
            group: SecurityGroup = self.call(net.get_security_group, group_id)
        except ResourceNotFound:
            return "the old primary's security group is gone: nothing reaches it"
        for rule in group.rules:
            with contextlib.suppress(ResourceNotFound):
                self.call(net.delete_security_group_rule, rule.id)
        return f"fenced {self.name_of(self.instance_id)}: {len(group.rules)} ingress rules removed"


class ChooseCandidate(_GroupStep):
    """The replica that received the most WAL; replicas that cannot be asked are skipped."""

    def __init__(
        self, ctx: ManagerContext, old: str, replicas: Sequence[str], cluster_id: str, port: int,
        *, name: str,
    ) -> None:  # fmt: skip
        super().__init__(ctx, old, cluster_id, port, name=name, provides="candidate")
        self.replicas = tuple(replicas)

    def execute(self) -> str:
        best: tuple[int, str] | None = None
        for replica in self.replicas:
            try:
                status = _status(self, replica)
            except (CellarError, DriverError):
                continue
            if status.role is Role.PRIMARY:
                return replica  # a resumed job: promoted already
            received = max(status.lsn, status.receive_lsn or 0)
            if best is None or received > best[0]:
                best = (received, replica)
        if best is None:
            raise CellarError(f"No replica of {self.instance_id} answers: none can be promoted.")
        return best[1]


class RecordLoss(_GroupStep):
    """The cluster's events say what the failover may have lost."""

    def __init__(
        self, ctx: ManagerContext, old: str, last_primary_lsn: int | None, cluster_id: str,
        port: int, *, name: str,
    ) -> None:  # fmt: skip
        super().__init__(ctx, old, cluster_id, port, name=name)
        self.last_primary_lsn = last_primary_lsn

    def execute(self, candidate: str) -> str:
        promoted_at = _status(self, candidate).lsn
        who = f"{self.name_of(candidate)} promoted at LSN {lsn_to_text(promoted_at)}"
        if self.last_primary_lsn is None:
            return f"{who}; the old primary's last position is unknown"
        lost = max(0, self.last_primary_lsn - promoted_at)
        return (
            f"{who}; the old primary was last seen at {lsn_to_text(self.last_primary_lsn)}: "
            f"lost window {lost} bytes of WAL"
        )


class Repoint(_GroupStep):
    """Every other live replica follows the new primary; the old one is marked fenced."""

    def __init__(
        self, ctx: ManagerContext, old: str, replicas: Sequence[str], cluster_id: str, port: int,
        *, name: str,
    ) -> None:  # fmt: skip
        super().__init__(ctx, old, cluster_id, port, name=name)
        self.replicas = tuple(replicas)

    def execute(self, candidate: str) -> None:
        for replica in self.replicas:
            if replica != candidate:
                self.follow(replica, candidate)
        self.ctx.store.record_resources(self.instance_id, replica_of_id=candidate)


def failover_flow(
    ctx: ManagerContext, cluster_id: str, args: dict[str, Any], names: Endpoints | None = None
) -> linear_flow.Flow:
    old, port = args["old_primary"], int(args["port"])
    replicas: list[str] = list(args.get("replicas") or ())
    last = args.get("last_primary_lsn")
    at = f"{ctx.store.get(old).name}:"
    return linear_flow.Flow("failover").add(
        Fence(ctx, old, cluster_id, port, name=f"{at}fence"),
        ChooseCandidate(ctx, old, replicas, cluster_id, port, name="candidate.choose"),
        Promote(ctx, old, cluster_id, port, old=old, name="candidate.promote"),
        UpdateEndpoints(ctx, cluster_id, names, name="endpoints.update"),
        RecordLoss(
            ctx, old, None if last is None else int(last), cluster_id, port, name="wal.lost_window"
        ),
        Repoint(ctx, old, replicas, cluster_id, port, name="replicas.follow"),
    )


# Detach.


class LeaveGroup(_GroupStep):
    """The promoted replica is an instance of its own: no group, no primary."""

    def execute(self) -> None:
        self.ctx.store.record_resources(self.instance_id, cluster_id=None, replica_of_id=None)


class ArchiveAlone(CellarTask):
    """Before a replica leaving its group is promoted: it archives into a stanza of its
    own from then on (its group's holds the group's timelines: the new timeline this
    promotion starts would collide there with one of a later failover's). Nothing where
    the backend has no repository."""

    def execute(self) -> None:
        backups = self.services.backup
        if backups is None:
            return
        project = self.ctx.store.get(self.instance_id).project_id
        access = self.call(backups.repository_access, project, self.instance_id)
        self.call(self.services.guest.archive_into, self.instance_id, access)

    def revert(self, *args: Any, **kwargs: Any) -> None:
        """Still a member: back to its group's stanza."""
        backups, record = self.services.backup, self.ctx.store.get(self.instance_id)
        if backups is None or record.cluster_id is None:
            return
        access = self.call(
            backups.repository_access, record.project_id, record.cluster_id,
            member=self.instance_id,
        )  # fmt: skip
        self.call(self.services.guest.archive_into, self.instance_id, access)


class CreateOwnStanza(CellarTask):
    """Once the detached member is a primary of its own: its stanza made."""

    def execute(self) -> None:
        backups = self.services.backup
        if backups is not None:
            self.call(backups.create_stanza, self.instance_id)


def detach_flow(
    ctx: ManagerContext, cluster_id: str, args: dict[str, Any], names: Endpoints | None = None
) -> linear_flow.Flow:
    replica, primary, port = args["replica"], args["primary"], int(args["port"])
    at = f"{ctx.store.get(replica).name}:"
    return linear_flow.Flow("detach").add(
        RevokePeerAccess(ctx, replica, cluster_id, name=f"{at}peers.revoke"),
        ArchiveAlone(ctx, replica, name=f"{at}archive.own"),
        Promote(ctx, replica, cluster_id, port, old=None, name=f"{at}promote"),
        DropReplicationSlot(ctx, replica, primary, name=f"{at}slot.drop"),
        LeaveGroup(ctx, replica, cluster_id, port, name=f"{at}group.leave"),
        CreateOwnStanza(ctx, replica, name=f"{at}backup.stanza"),
        UpdateEndpoints(ctx, cluster_id, names, name="endpoints.update"),
    )
