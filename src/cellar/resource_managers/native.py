"""The native resource manager: calls compute, volume, network and DNS one by one.

The task manager is the orchestrator here: each operation is a linear TaskFlow flow of
idempotent steps (a create first looks its resource up by name) whose reverts undo them.
"""

from __future__ import annotations

from collections.abc import Sequence

from taskflow.patterns import linear_flow, unordered_flow

from cellar.domain.errors import BadRequest
from cellar.domain.specs import FlavorSpec, InstanceSpec, RuleSpec
from cellar.resource_managers import native_changes as changes
from cellar.resource_managers import native_steps as steps
from cellar.resource_managers.base import ResourceManager
from cellar.resource_managers.cluster_steps import (
    DropReplicationSlot,
    PeerAccess,
    RevokePeerAccess,
    StopBeforeClusterDelete,
)
from cellar.resource_managers.common import (
    PrepareGuest,
    StartDatastore,
    StopDatastore,
    WaitForGuest,
)


class NativeManager(ResourceManager):
    name = "native"

    def provision_instance(self, spec: InstanceSpec) -> linear_flow.Flow:
        return self._provision(spec)

    def _provision(self, spec: InstanceSpec, at: str = "") -> linear_flow.Flow:
        """The steps of one instance; `at` prefixes their names in a cluster's flow (a
        member's name), where each member's steps form a flow of their own."""
        ctx, iid = self.ctx, spec.instance_id
        flow = linear_flow.Flow(f"{at}provision_instance").add(
            steps.CreateSecurityGroup(ctx, spec, name=f"{at}security_group.create"),
            steps.CreateVolume(ctx, spec, name=f"{at}volume.create"),
            steps.CreateServer(ctx, spec, name=f"{at}server.create"),
            steps.AttachVolume(ctx, iid, name=f"{at}volume.attach"),
        )
        if spec.replication_group is not None:
            flow.add(
                PeerAccess(ctx, iid, spec.replication_group, spec.ports, name=f"{at}peers.allow")
            )
        return flow.add(
            PrepareGuest(ctx, spec, name=f"{at}guest.prepare"),
            steps.CreateDnsRecord(ctx, iid, name=f"{at}dns.create"),
            WaitForGuest(ctx, iid, name=f"{at}guest.wait"),
        )

    def resize_flavor(self, instance_id: str, flavor: FlavorSpec) -> linear_flow.Flow:
        ctx = self.ctx
        return linear_flow.Flow("resize_flavor").add(
            StopDatastore(ctx, instance_id, name="datastore.stop"),
            changes.ResizeServer(ctx, instance_id, flavor, name="server.resize"),
            StartDatastore(ctx, instance_id, name="datastore.start"),
            changes.ConfirmResize(ctx, instance_id, flavor, name="server.confirm_resize"),
        )

    def resize_volume(self, instance_id: str, size_gb: int) -> linear_flow.Flow:
        current = self.ctx.store.get(instance_id).volume_size
        if size_gb <= current:
            raise BadRequest("resize.volume.size", f"must be larger than the current {current} GB")
        ctx = self.ctx
        return linear_flow.Flow("resize_volume").add(
            changes.ExtendVolume(ctx, instance_id, size_gb, name="volume.extend"),
            changes.ResizeFilesystem(ctx, instance_id, size_gb, name="guest.resize_fs"),
        )

    def reboot(self, instance_id: str) -> linear_flow.Flow:
        ctx = self.ctx
        return linear_flow.Flow("reboot").add(
            StopDatastore(ctx, instance_id, name="datastore.stop"),
            changes.RebootServer(ctx, instance_id, name="server.reboot"),
            StartDatastore(ctx, instance_id, name="datastore.start"),
        )

    def delete_instance(self, instance_id: str) -> linear_flow.Flow:
        return self._delete(instance_id)

    def _delete(self, instance_id: str, at: str = "") -> linear_flow.Flow:
        ctx = self.ctx
        return linear_flow.Flow(f"{at}delete_instance").add(
            steps.DeleteDnsRecord(ctx, instance_id, name=f"{at}dns.delete"),
            steps.DeleteServer(ctx, instance_id, name=f"{at}server.delete"),
            steps.DeleteVolume(ctx, instance_id, name=f"{at}volume.delete"),
            steps.DeleteSecurityGroup(ctx, instance_id, name=f"{at}security_group.delete"),
            steps.ForgetGuest(ctx, instance_id, name=f"{at}guest.forget"),
        )

    # Clusters: the primary is built first; the replicas copy it, each in a flow of its
    # own (TaskFlow resolves each step's inputs within its member's flow first).

    def provision_cluster(
        self, cluster_id: str, members: tuple[InstanceSpec, ...]
    ) -> linear_flow.Flow:
        primary, *replicas = members
        flow = linear_flow.Flow("provision_cluster").add(self._provision(primary, _at(primary)))
        if replicas:
            flow.add(self._replicas(replicas))
        return flow

    def grow_cluster(self, cluster_id: str, members: tuple[InstanceSpec, ...]) -> linear_flow.Flow:
        return linear_flow.Flow("grow_cluster").add(self._replicas(members))

    def _replicas(self, members: Sequence[InstanceSpec]) -> unordered_flow.Flow:
        return unordered_flow.Flow("replicas").add(
            *(self._provision(spec, _at(spec)) for spec in members)
        )

    def shrink_cluster(self, cluster_id: str, instance_ids: tuple[str, ...]) -> linear_flow.Flow:
        """Each removed replica: the others stop letting it in, it is deleted, and its
        slot on the primary is dropped."""
        ctx = self.ctx
        flow = linear_flow.Flow("shrink_cluster")
        for iid in instance_ids:
            record = ctx.store.get(iid)
            at = f"{record.name}:"
            flow.add(RevokePeerAccess(ctx, iid, cluster_id, name=f"{at}peers.revoke"))
            flow.add(*list(self._delete(iid, at)))
            if record.replica_of:
                flow.add(DropReplicationSlot(ctx, iid, record.replica_of, name=f"{at}slot.drop"))
        return flow

    def delete_cluster(self, cluster_id: str) -> linear_flow.Flow:
        """Every member, from any state: each datastore stopped, the primary first, then
        the resources, replicas first (a primary going first would make them complain)."""
        flow = linear_flow.Flow("delete_cluster")
        members = self.ctx.store.cluster_members(cluster_id)
        for record in members:
            at = f"{record.name}:"
            flow.add(StopBeforeClusterDelete(self.ctx, record.id, name=f"{at}datastore.stop"))
        for record in reversed(members):
            flow.add(*list(self._delete(record.id, f"{record.name}:")))
        return flow

    def add_security_group_rule(
        self, instance_id: str, rule_id: str, rule: RuleSpec
    ) -> linear_flow.Flow:
        return linear_flow.Flow("add_security_group_rule").add(
            changes.AddRule(self.ctx, instance_id, rule_id, rule, name="security_group_rule.create")
        )

    def update_security_group_rule_cidr(
        self, instance_id: str, rule_id: str, cidr: str
    ) -> linear_flow.Flow:
        return linear_flow.Flow("update_security_group_rule_cidr").add(
            changes.ChangeRuleCidr(
                self.ctx, instance_id, rule_id, cidr, name="security_group_rule.update"
            )
        )

    def delete_security_group_rule(self, instance_id: str, rule_id: str) -> linear_flow.Flow:
        return linear_flow.Flow("delete_security_group_rule").add(
            changes.DeleteRule(self.ctx, instance_id, rule_id, name="security_group_rule.delete")
        )

    def create_dns_record(self, instance_id: str) -> linear_flow.Flow:
        return linear_flow.Flow("create_dns_record").add(
            steps.CreateDnsRecord(self.ctx, instance_id, name="dns.create")
        )

    def delete_dns_record(self, instance_id: str) -> linear_flow.Flow:
        return linear_flow.Flow("delete_dns_record").add(
            steps.DeleteDnsRecord(self.ctx, instance_id, name="dns.delete")
        )


def _at(spec: InstanceSpec) -> str:
    """The prefix of a member's step names: its name (distinct within a cluster)."""
    return f"{spec.name}:"
