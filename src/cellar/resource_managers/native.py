"""The native resource manager: calls compute, volume, network and DNS one by one.

The task manager is the orchestrator here: each operation is a linear TaskFlow flow of
idempotent steps (a create first looks its resource up by name) whose reverts undo them.
"""

from __future__ import annotations

from taskflow.patterns import linear_flow

from cellar.domain.errors import BadRequest
from cellar.domain.specs import FlavorSpec, InstanceSpec, RuleSpec
from cellar.resource_managers import native_changes as changes
from cellar.resource_managers import native_steps as steps
from cellar.resource_managers.base import ResourceManager
from cellar.resource_managers.common import (
    PrepareGuest,
    StartDatastore,
    StopDatastore,
    WaitForGuest,
)


class NativeManager(ResourceManager):
    name = "native"

    def provision_instance(self, spec: InstanceSpec) -> linear_flow.Flow:
        ctx, iid = self.ctx, spec.instance_id
        return linear_flow.Flow("provision_instance").add(
            steps.CreateSecurityGroup(ctx, spec, name="security_group.create"),
            steps.CreateVolume(ctx, spec, name="volume.create"),
            steps.CreateServer(ctx, spec, name="server.create"),
            steps.AttachVolume(ctx, iid, name="volume.attach"),
            PrepareGuest(ctx, spec, name="guest.prepare"),
            steps.CreateDnsRecord(ctx, iid, name="dns.create"),
            WaitForGuest(ctx, iid, name="guest.wait"),
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
        ctx = self.ctx
        return linear_flow.Flow("delete_instance").add(
            steps.DeleteDnsRecord(ctx, instance_id, name="dns.delete"),
            steps.DeleteServer(ctx, instance_id, name="server.delete"),
            steps.DeleteVolume(ctx, instance_id, name="volume.delete"),
            steps.DeleteSecurityGroup(ctx, instance_id, name="security_group.delete"),
            steps.ForgetGuest(ctx, instance_id, name="guest.forget"),
        )

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
