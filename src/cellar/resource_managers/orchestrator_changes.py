"""The orchestrator's changes of what its stack template holds as data: security-group
rules and the DNS record. Each edits the stack's stored template (`templates.edits`) and
PATCH-updates the stack with it (`TemplateChange`), as one would with Heat; a failed
change patches the template it replaced back."""

from __future__ import annotations

import dataclasses
from typing import Any

from cellar.domain.specs import RuleSpec
from cellar.orchestration.templates.edits import (
    template_rules,
    with_dns_record,
    with_rules,
    without_dns_record,
)
from cellar.orchestration.templates.instance import DNS_RECORD
from cellar.resource_managers.base import ManagerContext
from cellar.resource_managers.orchestrator_steps import (
    StackTask,
    cloud_rule_ids,
    record_rule_ids,
    rule_key,
)

PREVIOUS_TEMPLATE = "previous_template"


class ReadTemplate(StackTask):
    """The stack's template before a change. A result, so TaskFlow persists it: the
    change's revert patches it back even in a task manager started after a crash."""

    def __init__(self, ctx: ManagerContext, iid: str, *, name: str) -> None:
        super().__init__(ctx, iid, name=name, provides=PREVIOUS_TEMPLATE)

    def execute(self) -> dict[str, Any]:
        template: dict[str, Any] = self.call(self.stacks.template, self.stack_id())
        return template


class TemplateChange(StackTask):
    """Edit the stack's stored template (`edit`) and PATCH-update the stack with it: the
    parameters are kept, and the engine changes only the resources whose definition
    changed. Then `record` what the instance shows of the result.

    The edit applies to the template stored now, not to the one read before: a step run
    again after a crash then finds its change made and does not make it twice.

    On failure the revert waits for the stack to settle: an engine that rolls a failed
    update back (Heat, with rollback enabled) stores the previous template again by
    itself. If it did not, or its rollback failed, the revert patches the previous
    template back."""

    def edit(self, template: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def record(self) -> None:
        """What the instance records of the change, once the stack has it."""

    def recorded_revert(self) -> None:
        """What the instance records once the previous template is back."""

    def execute(self) -> None:
        self.check_not_cancelled()
        stack_id = self.stack_id()
        apply_template(self, stack_id, self.edit(self.call(self.stacks.template, stack_id)))
        self.record()

    def revert(self, previous_template: dict[str, Any], **kwargs: Any) -> None:
        stack_id = self.stack_id()
        stack = self.wait_settled(stack_id)
        if stack.is_failed or self.call(self.stacks.template, stack_id) != previous_template:
            self.call(self.stacks.update, stack_id, template=previous_template)
            self.wait_stack(stack_id, "UPDATE", cancellable=False)
        self.recorded_revert()


def apply_template(t: StackTask, stack_id: str, template: dict[str, Any]) -> None:
    """Update the stack to `template` unless it has it already: a complete stack with
    that template needs nothing, one updating to it (a resumed step) is waited for."""
    stack = t.call(t.stacks.get, stack_id)
    if t.call(t.stacks.template, stack_id) == template:
        if stack.status in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "ROLLBACK_COMPLETE"):
            return
        if stack.status == "UPDATE_IN_PROGRESS":
            t.wait_stack(stack_id, "UPDATE")
            return
    t.call(t.stacks.update, stack_id, template=template)
    t.wait_stack(stack_id, "UPDATE")


class RuleChange(TemplateChange):
    """A change of one rule row (`rule_id`) of the instance's security group.

    The template's rule list is the one stored with the stack, with this change applied:
    at provision it is `spec.ingress_rules()`, the rows the API records for the new
    instance, and every rule job of the instance runs after the one before it (jobs of
    one instance run in order), so the list follows the rows through adds, CIDR changes
    and deletes."""

    def __init__(self, ctx: ManagerContext, iid: str, rule_id: str, *, name: str) -> None:
        super().__init__(ctx, iid, name=name)
        self.rule_id = rule_id

    def row_rule(self) -> RuleSpec:
        return self.ctx.store.rule(self.rule_id).spec

    def recorded_revert(self) -> None:
        record_rule_ids(self)


class AddRuleToStack(RuleChange):
    def __init__(
        self, ctx: ManagerContext, iid: str, rule_id: str, rule: RuleSpec, *, name: str
    ) -> None:
        super().__init__(ctx, iid, rule_id, name=name)
        self.rule = rule

    def edit(self, template: dict[str, Any]) -> dict[str, Any]:
        return with_rules(template, [*template_rules(template), self.rule])

    def record(self) -> None:
        ids = record_rule_ids(self)
        self.ctx.store.set_rule_provider_id(self.rule_id, ids.get(rule_key(self.rule)))

    def recorded_revert(self) -> None:
        super().recorded_revert()
        self.ctx.store.set_rule_provider_id(self.rule_id, None)


class ChangeRuleCidrInStack(RuleChange):
    """The rule takes the new CIDR in the same update that drops the old one (the group is
    reconciled in place: no other rule is touched). The row changes once the stack has
    it, as with the native manager: until then the API shows the CIDR in force."""

    def __init__(self, ctx: ManagerContext, iid: str, rule_id: str, cidr: str, *, name: str):
        super().__init__(ctx, iid, rule_id, name=name)
        self.cidr = cidr

    def edit(self, template: dict[str, Any]) -> dict[str, Any]:
        old = self.row_rule()
        new = dataclasses.replace(old, cidr=self.cidr)
        # In the old one's place; appended if the old one never made it (a failed add).
        rules = [new if rule == old else rule for rule in template_rules(template)]
        return with_rules(template, rules if new in rules else [*rules, new])

    def record(self) -> None:
        new = dataclasses.replace(self.row_rule(), cidr=self.cidr)
        provider_id = cloud_rule_ids(self).get(rule_key(new))
        self.ctx.store.update_rule(self.rule_id, cidr=self.cidr, provider_id=provider_id)


class DeleteRuleFromStack(RuleChange):
    def edit(self, template: dict[str, Any]) -> dict[str, Any]:
        gone = self.row_rule()
        return with_rules(template, [r for r in template_rules(template) if r != gone])

    def record(self) -> None:
        self.ctx.store.set_rule_provider_id(self.rule_id, None)


class EnsureRulesInStack(TemplateChange):
    """`create_security_group` for a stack: its group exists since the provision, so the
    rules asked for are added to it (those it has stay, as the native create keeps them)."""

    def __init__(
        self, ctx: ManagerContext, iid: str, rules: tuple[RuleSpec, ...], *, name: str
    ) -> None:
        super().__init__(ctx, iid, name=name)
        self.rules = rules

    def edit(self, template: dict[str, Any]) -> dict[str, Any]:
        return with_rules(template, [*template_rules(template), *self.rules])

    def record(self) -> None:
        record_rule_ids(self)

    def recorded_revert(self) -> None:
        record_rule_ids(self)


class AddDnsRecordToStack(TemplateChange):
    """Publish the instance's address: the provision's record set, added to the stack."""

    def edit(self, template: dict[str, Any]) -> dict[str, Any]:
        zone = self.ctx.settings.dns_zone
        return with_dns_record(template, zone=zone, hostname=self.hostname())

    def record(self) -> None:
        record_dns_record(self, hostname=self.hostname())

    def recorded_revert(self) -> None:
        record_dns_record(self)


class RemoveDnsRecordFromStack(TemplateChange):
    """Unpublish the address: the record set leaves the template, the engine deletes it.
    The hostname stays recorded (the native manager keeps it too)."""

    def edit(self, template: dict[str, Any]) -> dict[str, Any]:
        return without_dns_record(template)

    def record(self) -> None:
        record_dns_record(self)

    def recorded_revert(self) -> None:
        record_dns_record(self)


def record_dns_record(t: StackTask, **more: Any) -> None:
    """The stack's DNS record id on the instance (None once the stack has none)."""
    ids = {r.name: r.physical_id for r in t.call(t.stacks.resources, t.stack_id())}
    t.ctx.store.record_resources(t.instance_id, dns_record_id=ids.get(DNS_RECORD), **more)
