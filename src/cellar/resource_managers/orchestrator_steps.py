"""The steps of the orchestrator manager: everything through the instance's stack.

The stack (`orchestration.templates.instance_template`) owns the security group, volume,
server, attachment, DNS record and the wait condition the guest signals once its
datastore is ready; these steps create, update, signal and delete it, and copy the
physical ids the rest of cellar shows onto the instance.

What the template holds as data (the group's ingress rules, the DNS record) changes by
editing the stack's stored template and updating the stack with it (`TemplateChange`),
as one would with Heat; a failed change patches the template it replaced back."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
from typing import Any

from cellar.domain.errors import CellarError
from cellar.domain.specs import FlavorSpec, InstanceSpec, RuleSpec, resource_name
from cellar.domain.status import ServerStatus, ServiceStatus
from cellar.drivers.compute.base import Server
from cellar.drivers.network.base import SecurityGroup
from cellar.orchestration.stacks import (
    REBOOT,
    SignalNotSupported,
    Stack,
    StackNotFound,
    StackService,
)
from cellar.orchestration.templates.instance import (
    instance_parameters,
    instance_template,
    template_rules,
    update_parameters,
    with_dns_record,
    with_rules,
    without_dns_record,
)
from cellar.resource_managers.base import ManagerContext
from cellar.resource_managers.common import CellarTask, wait_for_server, wait_for_service

# The template's resource names (orchestration/templates/instance.py).
SERVER, VOLUME, GROUP, ATTACHMENT, RECORD, READY_HANDLE = (
    "server",
    "volume",
    "security_group",
    "volume_attachment",
    "dns_record",
    "ready_handle",
)


class StackTask(CellarTask):
    @property
    def stacks(self) -> StackService:
        stacks = self.ctx.stacks
        if stacks is None:
            raise CellarError("The orchestrator manager was built without a stack service.")
        return stacks

    def stack_id(self) -> str:
        stack_id = self.ctx.store.get(self.instance_id).stack_id
        if not stack_id:
            raise CellarError(f"Instance {self.instance_id} has no stack.")
        return stack_id

    def wait_stack(
        self, stack_id: str, action: str | tuple[str, ...], *, cancellable: bool = True
    ) -> Stack:
        """Until the stack's `action` (one of them) is COMPLETE; a FAILED or rolled-back
        stack raises, with the reason of the failure that started the rollback."""
        actions = (action,) if isinstance(action, str) else action
        return self.wait_for(
            f"stack {stack_id} to finish {'/'.join(actions)}",
            lambda: self.stacks.get(stack_id),
            lambda s: s.action in actions and s.status.endswith("_COMPLETE"),
            failed=lambda s: self._failure(s) if s.is_failed or s.action == "ROLLBACK" else None,
            timeout_s=self.ctx.settings.guest_timeout_s + self.ctx.settings.server_timeout_s,
            cancellable=cancellable,
        )

    def _failure(self, stack: Stack) -> str:
        """The stack's status and reason; after a rollback, also the failure that caused it
        (the last FAILED event before it), which the stack's own reason does not say."""
        message = f"{stack.status}: {stack.status_reason}"
        if stack.action != "ROLLBACK":
            return message
        with contextlib.suppress(CellarError):
            failed = [e for e in self.stacks.events(stack.id) if e.status == "FAILED"]
            if failed:
                return f"{failed[-1].action}_FAILED: {failed[-1].reason} ({message})"
        return message

    def retry_if_interrupted(self, stack_id: str) -> bool:
        """Retry the stack's operation if its engine died during it (`Stack.is_interrupted`:
        the task manager resuming this job failed it): a delete is deleted again, anything
        else is updated with its own template and parameters, which Heat (and the embedded
        engine) allow on a failed stack: the failed resources are kept where they survived
        (`needs_replace_failed`), replaced where not. Whether it retried."""
        stack = self.call(self.stacks.get, stack_id)
        if not stack.is_interrupted:
            return False
        if stack.action == "DELETE":
            self.call(self.stacks.delete, stack_id)
        else:
            self.call(self.stacks.update, stack_id)
        return True

    def delete_stack(self) -> None:
        stack_id = self.ctx.store.get(self.instance_id).stack_id
        if not stack_id:
            return
        try:
            self.call(self.stacks.delete, stack_id)
            self.wait_for(
                f"stack {stack_id} to be deleted",
                lambda: _status_or_gone(self.stacks, stack_id),
                lambda status: status in ("DELETE_COMPLETE", "GONE"),
                failed=lambda status: status if status == "DELETE_FAILED" else None,
                timeout_s=self.ctx.settings.server_timeout_s,
                cancellable=False,
            )
        except StackNotFound:
            pass
        self.ctx.store.record_resources(
            self.instance_id,
            stack_id=None,
            compute_instance_id=None,
            volume_id=None,
            security_group_id=None,
            dns_record_id=None,
            server_status=None,
            addresses=[],
        )


def _status_or_gone(stacks: StackService, stack_id: str) -> str:
    try:
        return stacks.get(stack_id).status
    except StackNotFound:
        return "GONE"


class CreateStack(StackTask):
    def __init__(self, ctx: ManagerContext, spec: InstanceSpec, *, name: str) -> None:
        super().__init__(ctx, spec.instance_id, name=name)
        self.spec = spec

    def execute(self) -> None:
        self.check_not_cancelled()
        if self.ctx.store.get(self.instance_id).stack_id:
            return  # created before a restart of the task manager
        found = self.call(self.stacks.find, self.spec.resource_name)
        if found is not None:
            # Created by a task manager that died before it recorded the id.
            self.ctx.store.record_resources(self.instance_id, stack_id=found.id)
            return
        user_data = self.services.guest.user_data(self.instance_id)
        stack_id = self.call(
            self.stacks.create,
            self.spec.resource_name,
            instance_template(self.spec, user_data=user_data),
            instance_parameters(self.spec, user_data),
        )
        self.ctx.store.record_resources(self.instance_id, stack_id=stack_id)

    def revert(self, *args: Any, **kwargs: Any) -> None:
        self.delete_stack()


class WaitForServer(StackTask):
    """Until the stack's server has its volume: then record the physical ids."""

    def __init__(self, ctx: ManagerContext, iid: str, *, name: str) -> None:
        super().__init__(ctx, iid, name=name, provides="server_id")

    def execute(self) -> str:
        stack_id = self.stack_id()
        self.retry_if_interrupted(stack_id)

        def ready() -> dict[str, str]:
            stack = self.stacks.get(stack_id)
            if stack.is_failed or stack.action == "ROLLBACK":
                raise CellarError(f"Stack {stack_id} is {self._failure(stack)}")
            # CREATE_COMPLETE, or UPDATE_COMPLETE once a retry updated it in place.
            done = {r.name: r.physical_id for r in self.stacks.resources(stack_id)
                    if r.status.endswith("_COMPLETE") and r.physical_id
                    and not r.status.startswith("DELETE")}  # fmt: skip
            return done

        ids = self.wait_for(
            f"the server of stack {stack_id}",
            ready,
            lambda done: SERVER in done and ATTACHMENT in done,
            timeout_s=self.ctx.settings.server_timeout_s,
        )
        server: Server = self.call(self.services.compute.get_server, ids[SERVER])
        self.ctx.store.record_resources(
            self.instance_id,
            compute_instance_id=ids[SERVER],
            volume_id=ids.get(VOLUME),
            security_group_id=ids.get(GROUP),
            addresses=list(server.addresses),
            server_status=server.status.value,
        )
        # The server uses the group, so its rules are made: give their rows the cloud's
        # ids, as the native provision does.
        record_rule_ids(self)
        return ids[SERVER]


class WaitForStack(StackTask):
    """Until the stack is complete: the guest signalled its wait condition."""

    def execute(self) -> None:
        stack_id = self.stack_id()
        self.retry_if_interrupted(stack_id)
        wait_for_service(self, ServiceStatus.RUNNING, timeout_s=self.ctx.settings.guest_timeout_s)
        if not self.services.guest.signals_ready:
            # This guest runs no code of its own (the fake): signal for it.
            self.call(
                self.stacks.signal,
                stack_id,
                READY_HANDLE,
                {"status": "SUCCESS", "reason": "the datastore is RUNNING", "id": "1"},
            )
        # CREATE, or UPDATE when a task manager's death made it retry the create.
        stack = self.wait_stack(stack_id, ("CREATE", "UPDATE"))
        record = {r.name: r.physical_id for r in self.stacks.resources(stack_id)}
        hostname = str(stack.outputs.get("hostname") or "") or None
        self.ctx.store.record_resources(
            self.instance_id, dns_record_id=record.get(RECORD), hostname=hostname
        )


class UpdateStack(StackTask):
    """A PATCH update of the stack's parameters. A flavor change is reverted by patching
    the old flavor back; a volume cannot shrink, so its growth is not reverted."""

    def __init__(self, ctx: ManagerContext, iid: str, *, name: str, **changes: Any) -> None:
        super().__init__(ctx, iid, name=name)
        self.changes = changes

    def _old(self) -> dict[str, Any]:
        record = self.ctx.store.get(self.instance_id)
        return {"flavor": record.flavor_id, "volume_size": record.volume_size}

    def execute(self) -> None:
        self.check_not_cancelled()
        stack_id = self.stack_id()
        parameters = update_parameters(self._old(), **self.changes)
        self.call(self.stacks.update, stack_id, parameters=parameters)
        self.wait_stack(stack_id, "UPDATE")

    def revert(self, *args: Any, **kwargs: Any) -> None:
        if "flavor" not in self.changes:
            return
        stack_id = self.stack_id()
        self.call(self.stacks.update, stack_id, parameters={"flavor": self._old()["flavor"]})
        self.wait_stack(stack_id, "UPDATE", cancellable=False)


class RecordFlavor(StackTask):
    def __init__(self, ctx: ManagerContext, iid: str, flavor: FlavorSpec, *, name: str) -> None:
        super().__init__(ctx, iid, name=name)
        self.flavor = flavor

    def execute(self) -> None:
        self.ctx.store.set_flavor(self.instance_id, self.flavor.id)


class SignalReboot(StackTask):
    """Reboot through the stack: a signal to its server resource (the embedded engine
    implements it). Heat's servers take no signal (`SignalNotSupported`, see heat.py):
    then the stack's server is rebooted through compute."""

    def execute(self) -> None:
        self.check_not_cancelled()
        stack_id = self.stack_id()
        server_id = self.ctx.store.get(self.instance_id).compute_instance_id or ""
        try:
            self.call(self.stacks.signal, stack_id, SERVER, {"action": REBOOT})
        except SignalNotSupported:
            self.call(self.services.compute.reboot_server, server_id)
        wait_for_server(self, server_id, ServerStatus.ACTIVE, "reboot")


class StopBeforeDelete(StackTask):
    """Stop the datastore first: the stack deletes the volume attachment before the
    server, and a filesystem PostgreSQL still writes to cannot be unmounted. Best effort:
    a guest that never came up or cannot be reached has nothing to stop."""

    def execute(self) -> None:
        with contextlib.suppress(CellarError):
            self.services.guest.stop_db(self.instance_id)


class DeleteStack(StackTask):
    def execute(self) -> None:
        self.delete_stack()


# Changes of the stored template: security-group rules and the DNS record.

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
        stack = self.wait_for(
            f"stack {stack_id} to settle",
            lambda: self.stacks.get(stack_id),
            lambda s: not s.is_in_progress,
            timeout_s=self.ctx.settings.guest_timeout_s + self.ctx.settings.server_timeout_s,
            cancellable=False,
        )
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


def _key(protocol: str, from_port: int, to_port: int, cidr: str) -> tuple[str, int, int, str]:
    return protocol, from_port, to_port, str(ipaddress.ip_network(cidr, strict=False))


def cloud_rule_ids(t: CellarTask) -> dict[tuple[str, int, int, str], str]:
    """The cloud ids of the instance's group's rules, by (protocol, ports, CIDR)."""
    group_id = t.ctx.store.get(t.instance_id).security_group_id
    if not group_id:
        raise CellarError(f"Instance {t.instance_id} has no security group.")
    group: SecurityGroup = t.call(t.services.network.get_security_group, group_id)
    return {_key(r.protocol, r.from_port, r.to_port, r.cidr): r.id for r in group.rules}


def record_rule_ids(t: CellarTask) -> dict[tuple[str, int, int, str], str]:
    """Give every live rule row of the instance the cloud id of its rule (the rows the
    API lists carry the same ids under both managers). The ids, for the caller."""
    ids = cloud_rule_ids(t)
    found = [(RuleSpec(*key), rule_id) for key, rule_id in ids.items()]
    t.ctx.store.record_group_rules(t.instance_id, found)
    return ids


def _spec_key(rule: RuleSpec) -> tuple[str, int, int, str]:
    return _key(rule.protocol, rule.from_port, rule.to_port, rule.cidr)


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
        row = self.ctx.store.rule(self.rule_id)
        return RuleSpec(row.protocol, row.from_port, row.to_port, row.cidr)

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
        self.ctx.store.set_rule_provider_id(self.rule_id, ids.get(_spec_key(self.rule)))

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
        provider_id = cloud_rule_ids(self).get(_spec_key(new))
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


def _hostname(t: CellarTask) -> str:
    return f"{resource_name(t.instance_id)}.{t.ctx.settings.dns_zone}"


class AddDnsRecordToStack(TemplateChange):
    """Publish the instance's address: the provision's record set, added to the stack."""

    def edit(self, template: dict[str, Any]) -> dict[str, Any]:
        zone = self.ctx.settings.dns_zone
        return with_dns_record(template, zone=zone, hostname=_hostname(self))

    def record(self) -> None:
        record_dns_record(self, hostname=_hostname(self))

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
    t.ctx.store.record_resources(t.instance_id, dns_record_id=ids.get(RECORD), **more)
