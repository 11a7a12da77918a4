"""The orchestrator resource manager: each instance is a stack (HOT template as data),
created, updated (PATCH), signalled and deleted through the orchestration service.

Security-group rules and the DNS record are data of the template: a change of either
is the stored template, edited, as a stack update (`orchestrator_changes.TemplateChange`).
What it does not override stays unsupported (HTTP 501 with the operation's name):
deleting the security group (the server's `security_groups` cannot change in place, so
the engine would replace the database server) and clusters, which come later."""

from __future__ import annotations

from taskflow.patterns import linear_flow

from cellar.domain.specs import FlavorSpec, InstanceSpec, RuleSpec
from cellar.orchestration.templates.instance import update_parameters
from cellar.resource_managers import orchestrator_changes as changes
from cellar.resource_managers import orchestrator_steps as steps
from cellar.resource_managers.base import ResourceManager
from cellar.resource_managers.common import PrepareGuest, StartDatastore, StopDatastore
from cellar.resource_managers.native_changes import ResizeFilesystem
from cellar.resource_managers.native_steps import ForgetGuest


class OrchestratorManager(ResourceManager):
    name = "orchestrator"

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
        return linear_flow.Flow("delete_instance").add(
            steps.StopBeforeDelete(ctx, instance_id, name="datastore.stop"),
            steps.DeleteStack(ctx, instance_id, name="stack.delete"),
            ForgetGuest(ctx, instance_id, name="guest.forget"),
        )

    # Security-group rules and DNS: the stored template, edited, as a stack update.

    def _template_change(self, flow_name: str, change: changes.TemplateChange) -> linear_flow.Flow:
        """Read the template first (the revert's copy), then change it."""
        iid = change.instance_id
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
