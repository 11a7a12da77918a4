"""The orchestrator resource manager: each instance is a stack (HOT template as data),
created, updated (PATCH), signalled and deleted through the orchestration service.

Security-group rules and the DNS record are data of the template: a change of either
is the stored template, edited, as a stack update (`orchestrator_changes.TemplateChange`).
What it does not override stays unsupported (HTTP 501 with the operation's name):
deleting the security group (the server's `security_groups` cannot change in place, so
the engine would replace the database server), and a cluster member's security-group
rules and DNS record (their template edits do not know a member's prefix yet).

A cluster is one stack (`orchestrator_cluster`): provision, grow, shrink and delete
change it as a whole; a member's resize and reboot change its own prefixed parameters
and resources only."""

from __future__ import annotations

from collections.abc import Sequence

from taskflow.patterns import linear_flow, unordered_flow

from cellar.domain.errors import OperationIsNotSupported
from cellar.domain.specs import FlavorSpec, InstanceSpec, RuleSpec
from cellar.orchestration.templates.instance import update_parameters
from cellar.resource_managers import orchestrator_changes as changes
from cellar.resource_managers import orchestrator_cluster as cluster
from cellar.resource_managers import orchestrator_steps as steps
from cellar.resource_managers.base import Operation, ResourceManager
from cellar.resource_managers.cluster_steps import (
    DropReplicationSlot,
    PeerAccess,
    RevokePeerAccess,
)
from cellar.resource_managers.common import PrepareGuest, StartDatastore, StopDatastore
from cellar.resource_managers.native_changes import ResizeFilesystem
from cellar.resource_managers.native_steps import ForgetGuest


class OrchestratorManager(ResourceManager):
    name = "orchestrator"
    # A member's rules and DNS record are data of its cluster's stack (not yet edited).
    not_for_members = frozenset(
        {
            Operation.CREATE_SECURITY_GROUP,
            Operation.ADD_SECURITY_GROUP_RULE,
            Operation.UPDATE_SECURITY_GROUP_RULE_CIDR,
            Operation.DELETE_SECURITY_GROUP_RULE,
            Operation.CREATE_DNS_RECORD,
            Operation.DELETE_DNS_RECORD,
        }
    )

    def provision_instance(self, spec: InstanceSpec) -> linear_flow.Flow:
        ctx, iid = self.ctx, spec.instance_id
        return linear_flow.Flow("provision_instance").add(
            steps.CreateStack(ctx, spec, name="stack.create"),
            steps.WaitForServer(ctx, iid, name="stack.server"),
            PrepareGuest(ctx, spec, name="guest.prepare"),
            steps.WaitForStack(ctx, iid, name="stack.ready"),
        )

    def resize_flavor(self, instance_id: str, flavor: FlavorSpec) -> linear_flow.Flow:
        ctx = self.ctx
        return linear_flow.Flow("resize_flavor").add(
            StopDatastore(ctx, instance_id, name="datastore.stop"),
            steps.UpdateStack(ctx, instance_id, name="stack.update", flavor=flavor.id),
            StartDatastore(ctx, instance_id, name="datastore.start"),
            steps.RecordFlavor(ctx, instance_id, flavor, name="instance.flavor"),
        )

    def resize_volume(self, instance_id: str, size_gb: int) -> linear_flow.Flow:
        record = self.ctx.store.get(instance_id)
        # Refused before anything is touched (a shrink, or a size the template lacks).
        update_parameters({"volume_size": record.volume_size}, volume_size=size_gb)
        ctx = self.ctx
        return linear_flow.Flow("resize_volume").add(
            steps.UpdateStack(ctx, instance_id, name="stack.update", volume_size=size_gb),
            ResizeFilesystem(ctx, instance_id, size_gb, name="guest.resize_fs"),
        )

    def reboot(self, instance_id: str) -> linear_flow.Flow:
        ctx = self.ctx
        return linear_flow.Flow("reboot").add(
            StopDatastore(ctx, instance_id, name="datastore.stop"),
            steps.SignalReboot(ctx, instance_id, name="stack.signal_reboot"),
            StartDatastore(ctx, instance_id, name="datastore.start"),
        )

    def delete_instance(self, instance_id: str) -> linear_flow.Flow:
        ctx = self.ctx
        record = ctx.store.get(instance_id)
        if record.cluster_id is not None:
            return self._delete_member(record.cluster_id, instance_id)
        return linear_flow.Flow("delete_instance").add(
            steps.StopBeforeDelete(ctx, instance_id, name="datastore.stop"),
            steps.DeleteStack(ctx, instance_id, name="stack.delete"),
            ForgetGuest(ctx, instance_id, name="guest.forget"),
        )

    # Clusters: one stack; the primary first, then the replicas, each in a flow of its
    # own (TaskFlow resolves each step's inputs within its member's flow first).

    def provision_cluster(
        self, cluster_id: str, members: tuple[InstanceSpec, ...]
    ) -> linear_flow.Flow:
        primary, *replicas = members
        ctx = self.ctx
        flow = linear_flow.Flow("provision_cluster").add(
            cluster.CreateClusterStack(ctx, cluster_id, members, name="stack.create"),
            self._member(primary),
        )
        if replicas:
            flow.add(self._replicas(replicas))
        ids = [m.instance_id for m in members]
        return flow.add(cluster.WaitForClusterStack(ctx, cluster_id, ids, name="stack.ready"))

    def grow_cluster(self, cluster_id: str, members: tuple[InstanceSpec, ...]) -> linear_flow.Flow:
        ctx, ids = self.ctx, [m.instance_id for m in members]
        return linear_flow.Flow("grow_cluster").add(
            cluster.AddMembers(ctx, cluster_id, members, name="stack.update"),
            self._replicas(members),
            cluster.WaitForClusterStack(ctx, cluster_id, ids, name="stack.ready"),
        )

    def _replicas(self, members: Sequence[InstanceSpec]) -> unordered_flow.Flow:
        return unordered_flow.Flow("replicas").add(*(self._member(spec) for spec in members))

    def _member(self, spec: InstanceSpec) -> linear_flow.Flow:
        """A member's part once the stack makes its server: ids recorded, peers let in,
        guest prepared, its wait condition signalled once RUNNING."""
        ctx, iid, at = self.ctx, spec.instance_id, f"{spec.name}:"
        flow = linear_flow.Flow(f"{at}provision_instance").add(
            steps.WaitForServer(ctx, iid, name=f"{at}stack.server")
        )
        if spec.replication_group is not None:
            flow.add(
                PeerAccess(ctx, iid, spec.replication_group, spec.ports, name=f"{at}peers.allow")
            )
        return flow.add(
            PrepareGuest(ctx, spec, name=f"{at}guest.prepare"),
            cluster.MemberReady(ctx, iid, name=f"{at}stack.member_ready"),
        )

    def shrink_cluster(self, cluster_id: str, instance_ids: tuple[str, ...]) -> linear_flow.Flow:
        """The others stop letting the removed members in, their datastores stop, one
        stack update takes them out, and their slots on the primary are dropped."""
        ctx = self.ctx
        records = [ctx.store.get(iid) for iid in instance_ids]
        flow = linear_flow.Flow("shrink_cluster")
        for record in records:
            at = f"{record.name}:"
            flow.add(
                RevokePeerAccess(ctx, record.id, cluster_id, name=f"{at}peers.revoke"),
                steps.StopBeforeDelete(ctx, record.id, name=f"{at}datastore.stop"),
            )
        flow.add(cluster.RemoveMembers(ctx, cluster_id, instance_ids, name="stack.update"))
        for record in records:
            at = f"{record.name}:"
            if record.replica_of:
                flow.add(
                    DropReplicationSlot(ctx, record.id, record.replica_of, name=f"{at}slot.drop")
                )
            flow.add(ForgetGuest(ctx, record.id, name=f"{at}guest.forget"))
        return flow

    def delete_cluster(self, cluster_id: str) -> linear_flow.Flow:
        """From any state: every member's datastore stopped (best effort), the stack
        deleted."""
        ctx = self.ctx
        records = ctx.store.cluster_members(cluster_id)
        flow = linear_flow.Flow("delete_cluster")
        for record in reversed(records):
            flow.add(steps.StopBeforeDelete(ctx, record.id, name=f"{record.name}:datastore.stop"))
        if records:
            ids = [r.id for r in records]
            flow.add(cluster.DeleteClusterStack(ctx, cluster_id, ids, name="stack.delete"))
        for record in records:
            flow.add(ForgetGuest(ctx, record.id, name=f"{record.name}:guest.forget"))
        return flow

    def _delete_member(self, cluster_id: str, instance_id: str) -> linear_flow.Flow:
        """A member deleted on its own: a replica leaves the cluster as in a shrink; the
        primary only once it is the last member (the replicas' servers depend on it)."""
        members = self.ctx.store.cluster_members(cluster_id)
        record = self.ctx.store.get(instance_id)
        if record.replica_of is not None:
            flow = self.shrink_cluster(cluster_id, (instance_id,))
        elif all(m.id == instance_id for m in members):
            flow = self.delete_cluster(cluster_id)
        else:
            raise OperationIsNotSupported(
                "delete_instance of a cluster's primary while it has replicas "
                "(shrink the replicas or delete the cluster)",
                self.name,
            )
        return linear_flow.Flow("delete_instance").add(*list(flow))

    def _not_for_members(self, instance_id: str, operation: Operation) -> None:
        if self.ctx.store.get(instance_id).cluster_id is not None:
            raise OperationIsNotSupported(f"{operation.value} of a cluster member", self.name)

    # Security-group rules and DNS: the stored template, edited, as a stack update.

    def _template_change(self, flow_name: str, change: changes.TemplateChange) -> linear_flow.Flow:
        """Read the template first (the revert's copy), then change it."""
        iid = change.instance_id
        self._not_for_members(iid, Operation(flow_name))
        return linear_flow.Flow(flow_name).add(
            changes.ReadTemplate(self.ctx, iid, name="stack.template"), change
        )

    def create_security_group(
        self, instance_id: str, rules: tuple[RuleSpec, ...]
    ) -> linear_flow.Flow:
        """The group is the stack's, made at provision: "create" makes sure it has `rules`."""
        change = changes.EnsureRulesInStack(
            self.ctx, instance_id, rules, name="security_group.update"
        )
        return self._template_change("create_security_group", change)

    def add_security_group_rule(
        self, instance_id: str, rule_id: str, rule: RuleSpec
    ) -> linear_flow.Flow:
        change = changes.AddRuleToStack(
            self.ctx, instance_id, rule_id, rule, name="security_group_rule.create"
        )
        return self._template_change("add_security_group_rule", change)

    def update_security_group_rule_cidr(
        self, instance_id: str, rule_id: str, cidr: str
    ) -> linear_flow.Flow:
        change = changes.ChangeRuleCidrInStack(
            self.ctx, instance_id, rule_id, cidr, name="security_group_rule.update"
        )
        return self._template_change("update_security_group_rule_cidr", change)

    def delete_security_group_rule(self, instance_id: str, rule_id: str) -> linear_flow.Flow:
        change = changes.DeleteRuleFromStack(
            self.ctx, instance_id, rule_id, name="security_group_rule.delete"
        )
        return self._template_change("delete_security_group_rule", change)

    def create_dns_record(self, instance_id: str) -> linear_flow.Flow:
        change = changes.AddDnsRecordToStack(self.ctx, instance_id, name="dns.create")
        return self._template_change("create_dns_record", change)

    def delete_dns_record(self, instance_id: str) -> linear_flow.Flow:
        change = changes.RemoveDnsRecordFromStack(self.ctx, instance_id, name="dns.delete")
        return self._template_change("delete_dns_record", change)
