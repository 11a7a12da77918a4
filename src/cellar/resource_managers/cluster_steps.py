"""Steps every manager's cluster flows share: the members reaching each other on the
datastore's ports, and a removed replica's slot dropped on its primary.

Peer access: each member's security group lets every other member's address in on the
datastore's ports (a /32 rule), and nobody else beyond the user's allowed CIDRs. A rule
already covered by an allowed CIDR (the default 0.0.0.0/0) is not added. The rules are
the cloud's, not the user's (no rule rows): they come and go with the members.
"""

from __future__ import annotations

import contextlib
import ipaddress
from typing import Any

from cellar.domain.clusters import Endpoints
from cellar.domain.errors import CellarError
from cellar.domain.replication import ReplicationSpec, Role, slot_name
from cellar.drivers.base import DriverError, ResourceNotFound
from cellar.drivers.dns.base import Record, record_set
from cellar.drivers.network.base import InvalidRule, SecurityGroup
from cellar.resource_managers.base import InstanceRecord, ManagerContext
from cellar.resource_managers.common import CellarTask


def _covered(group: SecurityGroup, address: str, port: int) -> bool:
    ip = ipaddress.ip_address(address)
    return any(
        r.protocol == "tcp"
        and r.from_port <= port <= r.to_port
        and ip in ipaddress.ip_network(r.cidr, strict=False)
        for r in group.rules
    )


class PeerAccess(CellarTask):
    """After this member's server exists, before its guest is prepared: it and every other
    member of `cluster_id` may reach each other on the datastore's ports."""

    def __init__(
        self, ctx: ManagerContext, instance_id: str, cluster_id: str, ports: tuple[int, ...], *,
        name: str,
    ) -> None:  # fmt: skip
        super().__init__(ctx, instance_id, name=name)
        self.cluster_id = cluster_id
        self.ports = ports

    def execute(self) -> None:
        self.check_not_cancelled()
        me = self.ctx.store.get(self.instance_id)
        for other in self.ctx.store.cluster_members(self.cluster_id):
            if other.id == me.id:
                continue
            self._allow(me, other)
            self._allow(other, me)

    def _allow(self, into: InstanceRecord, source: InstanceRecord) -> None:
        if not into.security_group_id or not source.addresses:
            return
        net = self.services.network
        group: SecurityGroup = self.call(net.get_security_group, into.security_group_id)
        address = source.addresses[0]
        for port in self.ports:
            if _covered(group, address, port):
                continue
            with contextlib.suppress(InvalidRule):  # made by an interrupted try
                self.call(
                    net.create_security_group_rule,
                    group_id=group.id,
                    protocol="tcp",
                    from_port=port,
                    to_port=port,
                    cidr=f"{address}/32",
                )

    def revert(self, *args: Any, **kwargs: Any) -> None:
        revoke_peer_access(self, self.instance_id, self.cluster_id)


def revoke_peer_access(t: CellarTask, instance_id: str, cluster_id: str) -> None:
    """Remove the /32 rules that let `instance_id` into the other members."""
    try:
        me = t.ctx.store.get(instance_id)
    except CellarError:
        return
    if not me.addresses:
        return
    cidr = f"{me.addresses[0]}/32"
    net = t.services.network
    for other in t.ctx.store.cluster_members(cluster_id):
        if other.id == instance_id or not other.security_group_id:
            continue
        try:
            group: SecurityGroup = t.call(net.get_security_group, other.security_group_id)
        except ResourceNotFound:
            continue
        for rule in group.rules:
            if rule.cidr == cidr:
                with contextlib.suppress(ResourceNotFound):
                    t.call(net.delete_security_group_rule, rule.id)


class RevokePeerAccess(CellarTask):
    """Before a removed member's server goes: the others stop letting it in."""

    def __init__(
        self, ctx: ManagerContext, instance_id: str, cluster_id: str, *, name: str
    ) -> None:
        super().__init__(ctx, instance_id, name=name)
        self.cluster_id = cluster_id

    def execute(self) -> None:
        revoke_peer_access(self, self.instance_id, self.cluster_id)


class DropReplicationSlot(CellarTask):
    """After a replica is gone: its slot on the primary would hold WAL back (up to
    `max_slot_wal_keep_size`) for a standby that never comes back."""

    def __init__(self, ctx: ManagerContext, instance_id: str, primary_id: str, *, name: str):
        super().__init__(ctx, instance_id, name=name)
        self.primary_id = primary_id

    def execute(self) -> None:
        self.call(
            self.services.guest.drop_replication_slot,
            self.primary_id,
            slot_name(self.instance_id),
        )


# Members that serve through the endpoints: built, not on their way out or fenced.
_SERVING = frozenset({"NONE", "RESTART_REQUIRED", "PROMOTING", "RESIZING", "RESIZING_VOLUME",
                      "REBOOTING", "RESTARTING", "BUILDING"})  # fmt: skip


class UpdateEndpoints(CellarTask):
    """The cluster's endpoints as its rows say now: `rw` the primary's address, `ro` every
    serving replica's (removed when there is none). Idempotent: names are looked up."""

    def __init__(
        self, ctx: ManagerContext, cluster_id: str, names: Endpoints | None, *, name: str
    ) -> None:
        super().__init__(ctx, cluster_id, name=name)
        self.names = names

    def execute(self) -> str:
        if self.names is None:
            return "no endpoints"
        members = [m for m in self.ctx.store.cluster_members(self.instance_id)
                   if m.task in _SERVING and m.addresses]  # fmt: skip
        primary = [m.addresses[0] for m in members if m.replica_of is None]
        replicas = [m.addresses[0] for m in members if m.replica_of is not None]
        self._set(self.names.rw, primary[:1])
        self._set(self.names.ro, replicas)
        return f"{self.names.rw} -> {', '.join(primary[:1]) or 'nothing'}; " + (
            f"{self.names.ro} -> {', '.join(sorted(replicas)) or 'nothing'}"
        )

    def _set(self, name: str, addresses: list[str]) -> None:
        dns = self.services.dns
        found: Record | None = self.call(dns.find_record, name, "A")
        if not addresses:
            if found is not None:
                with contextlib.suppress(ResourceNotFound):
                    self.call(dns.delete_record, found.id)
            return
        data = record_set(addresses)
        if found is None:
            self.call(dns.create_record, name=name, rtype="A", data=data, ttl=ENDPOINT_TTL_S)
        elif found.data != data:
            self.call(dns.update_record, found.id, data=data)


class RemoveEndpoints(UpdateEndpoints):
    def execute(self) -> str:
        if self.names is not None:
            self._set(self.names.rw, [])
            self._set(self.names.ro, [])
        return "endpoints removed"


# Clients re-resolve an endpoint this soon after a switchover or failover moved it.
ENDPOINT_TTL_S = 5


class MakeReplicationSource(CellarTask):
    """Before a grow: the primary lets replicas stream (a primary prepared alone, before
    its first `replica_of`, has no replication role yet; for the others a repeat)."""

    def __init__(self, ctx: ManagerContext, primary_id: str, cluster_id: str, *, name: str):
        super().__init__(ctx, primary_id, name=name)
        self.cluster_id = cluster_id

    def execute(self) -> None:
        self.check_not_cancelled()
        guest = self.services.guest
        password = guest.replication_password(self.cluster_id)
        self.call(
            guest.make_replication_source, self.instance_id, ReplicationSpec(Role.PRIMARY, password)
        )


class StopBeforeClusterDelete(CellarTask):
    """Before a cluster's servers go: its datastore stops cleanly, the primary first (its
    WAL senders then hand the last WAL to standbys that are still there, instead of
    waiting on ones whose servers are gone). Best effort: a member that never came up
    or cannot be reached has nothing to stop."""

    def execute(self) -> None:
        with contextlib.suppress(CellarError, DriverError):
            self.services.guest.stop_db(self.instance_id)
