"""The steps of the orchestrator manager: everything through the instance's stack.

The stack (`orchestration.templates.instance_template`) owns the security group, volume,
server, attachment, DNS record and the wait condition the guest signals once its
datastore is ready; these steps create, update, signal and delete it, and copy the
physical ids the rest of cellar shows onto the instance.

What the template holds as data (the group's ingress rules, the DNS record) changes by
editing the stack's stored template and updating the stack with it: those steps are in
`orchestrator_changes`."""

from __future__ import annotations

import contextlib
from ipaddress import ip_network
from typing import Any

from cellar.domain.errors import CellarError
from cellar.domain.specs import FlavorSpec, InstanceSpec, RuleSpec
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
from cellar.orchestration.templates.cluster import prefix_of
from cellar.orchestration.templates.instance import (
    DNS_RECORD,
    FLAVOR,
    READY_HANDLE,
    SECURITY_GROUP,
    SERVER,
    VOLUME,
    VOLUME_ATTACHMENT,
    VOLUME_SIZE,
    instance_parameters,
    instance_template,
    update_parameters,
)
from cellar.resource_managers.base import ManagerContext
from cellar.resource_managers.common import CellarTask, wait_for_server, wait_for_service


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

    def prefix(self) -> str:
        """What the instance's resource and parameter names start with in its stack: a
        cluster member's prefix in its cluster's stack, nothing in a stack of its own."""
        if self.ctx.store.get(self.instance_id).cluster_id is None:
            return ""
        return prefix_of(self.instance_id)

    def signal_ready(self, stack_id: str) -> None:
        """Once the datastore is RUNNING: signal the instance's wait condition for a guest
        that runs no code of its own (the fake); a real guest signals it itself."""
        wait_for_service(self, ServiceStatus.RUNNING, timeout_s=self.ctx.settings.guest_timeout_s)
        if not self.services.guest.signals_ready:
            self.call(
                self.stacks.signal,
                stack_id,
                f"{self.prefix()}{READY_HANDLE}",
                {"status": "SUCCESS", "reason": "the datastore is RUNNING", "id": "1"},
            )

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

    def wait_settled(self, stack_id: str) -> Stack:
        """Until no operation runs on the stack (whatever its outcome); not cancellable:
        reverts wait so."""
        return self.wait_for(
            f"stack {stack_id} to settle",
            lambda: self.stacks.get(stack_id),
            lambda s: not s.is_in_progress,
            timeout_s=self.ctx.settings.guest_timeout_s + self.ctx.settings.server_timeout_s,
            cancellable=False,
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
        self.remove_stack(stack_id)
        self.forget_resources(self.instance_id)

    def remove_stack(self, stack_id: str) -> None:
        """Delete the stack and wait until it is gone (an unknown one is gone already)."""
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

    def forget_resources(self, instance_id: str) -> None:
        """The instance owns no stack resources any more."""
        self.ctx.store.record_resources(
            instance_id,
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
        at = self.prefix()
        server, attachment = f"{at}{SERVER}", f"{at}{VOLUME_ATTACHMENT}"

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
            lambda done: server in done and attachment in done,
            timeout_s=self.ctx.settings.server_timeout_s,
        )
        made: Server = self.call(self.services.compute.get_server, ids[server])
        self.ctx.store.record_resources(
            self.instance_id,
            compute_instance_id=ids[server],
            volume_id=ids.get(f"{at}{VOLUME}"),
            security_group_id=ids.get(f"{at}{SECURITY_GROUP}"),
            addresses=list(made.addresses),
            server_status=made.status.value,
        )
        # The server uses the group, so its rules are made: give their rows the cloud's
        # ids, as the native provision does.
        record_rule_ids(self)
        return ids[server]


class WaitForStack(StackTask):
    """Until the stack is complete: the guest signalled its wait condition."""

    def execute(self) -> None:
        stack_id = self.stack_id()
        self.retry_if_interrupted(stack_id)
        self.signal_ready(stack_id)
        # CREATE, or UPDATE when a task manager's death made it retry the create.
        stack = self.wait_stack(stack_id, ("CREATE", "UPDATE"))
        record = {r.name: r.physical_id for r in self.stacks.resources(stack_id)}
        hostname = str(stack.outputs.get("hostname") or "") or None
        self.ctx.store.record_resources(
            self.instance_id, dns_record_id=record.get(DNS_RECORD), hostname=hostname
        )


class UpdateStack(StackTask):
    """A PATCH update of the stack's parameters. A flavor change is reverted by patching
    the old flavor back; a volume cannot shrink, so its growth is not reverted."""

    def __init__(self, ctx: ManagerContext, iid: str, *, name: str, **changes: Any) -> None:
        super().__init__(ctx, iid, name=name)
        self.changes = changes

    def _old(self) -> dict[str, Any]:
        record, at = self.ctx.store.get(self.instance_id), self.prefix()
        return {f"{at}{FLAVOR}": record.flavor_id, f"{at}{VOLUME_SIZE}": record.volume_size}

    def execute(self) -> None:
        """Only this instance's parameters: in a cluster's stack, the other members'
        are left out, so PATCH keeps them and the engine leaves their resources alone."""
        self.check_not_cancelled()
        stack_id, at = self.stack_id(), self.prefix()
        changes = {f"{at}{key}": value for key, value in self.changes.items()}
        parameters = update_parameters(self._old(), **changes)
        self.call(self.stacks.update, stack_id, parameters=parameters)
        self.wait_stack(stack_id, "UPDATE")

    def revert(self, *args: Any, **kwargs: Any) -> None:
        if "flavor" not in self.changes:
            return
        stack_id, flavor = self.stack_id(), f"{self.prefix()}{FLAVOR}"
        self.call(self.stacks.update, stack_id, parameters={flavor: self._old()[flavor]})
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
            self.call(self.stacks.signal, stack_id, f"{self.prefix()}{SERVER}", {"action": REBOOT})
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


# The security group's rules, as the cloud made them.


def rule_key(rule: RuleSpec) -> tuple[str, int, int, str]:
    """A rule as the cloud's group holds it (its CIDR normalised), to match the two."""
    return rule.protocol, rule.from_port, rule.to_port, str(ip_network(rule.cidr, strict=False))


def cloud_rule_ids(t: CellarTask) -> dict[tuple[str, int, int, str], str]:
    """The cloud ids of the instance's group's rules, by (protocol, ports, CIDR)."""
    group: SecurityGroup = t.call(t.services.network.get_security_group, t.security_group_id())
    return {
        rule_key(RuleSpec(r.protocol, r.from_port, r.to_port, r.cidr)): r.id for r in group.rules
    }


def record_rule_ids(t: CellarTask) -> dict[tuple[str, int, int, str], str]:
    """Give every live rule row of the instance the cloud id of its rule (the rows the
    API lists carry the same ids under both managers). The ids, for the caller."""
    ids = cloud_rule_ids(t)
    found = [(RuleSpec(*key), rule_id) for key, rule_id in ids.items()]
    t.ctx.store.record_group_rules(t.instance_id, found)
    return ids
