"""The steps of the orchestrator manager: everything through the instance's stack.

The stack (`orchestration.templates.instance_template`) owns the security group, volume,
server, attachment, DNS record and the wait condition the guest signals once its
datastore is ready; these steps create, update, signal and delete it, and copy the
physical ids the rest of cellar shows onto the instance."""

from __future__ import annotations

import contextlib
from typing import Any

from cellar.domain.errors import CellarError
from cellar.domain.specs import FlavorSpec, InstanceSpec
from cellar.domain.status import ServerStatus, ServiceStatus
from cellar.drivers.compute.base import Server
from cellar.orchestration.stacks import REBOOT, Stack, StackNotFound, StackService
from cellar.orchestration.templates.instance import (
    instance_parameters,
    instance_template,
    update_parameters,
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

    def wait_stack(self, stack_id: str, action: str, *, cancellable: bool = True) -> Stack:
        """Until the stack's `action` is COMPLETE; a FAILED or rolled-back stack raises."""
        return self.wait_for(
            f"stack {stack_id} to finish {action}",
            lambda: self.stacks.get(stack_id),
            lambda s: s.status == f"{action}_COMPLETE",
            failed=lambda s: (
                f"{s.status}: {s.status_reason}" if s.is_failed or s.action == "ROLLBACK" else None
            ),
            timeout_s=self.ctx.settings.guest_timeout_s + self.ctx.settings.server_timeout_s,
            cancellable=cancellable,
        )

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
        template = instance_template(
            self.spec, user_data=self.services.guest.user_data(self.instance_id)
        )
        stack_id = self.call(
            self.stacks.create,
            self.spec.resource_name,
            template,
            instance_parameters(self.spec),
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

        def ready() -> dict[str, str]:
            stack = self.stacks.get(stack_id)
            if stack.is_failed or stack.action == "ROLLBACK":
                raise CellarError(f"Stack {stack_id} is {stack.status}: {stack.status_reason}")
            done = {r.name: r.physical_id for r in self.stacks.resources(stack_id)
                    if r.status == "CREATE_COMPLETE" and r.physical_id}  # fmt: skip
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
        return ids[SERVER]


class WaitForStack(StackTask):
    """Until the stack is complete: the guest signalled its wait condition."""

    def execute(self) -> None:
        stack_id = self.stack_id()
        wait_for_service(self, ServiceStatus.RUNNING, timeout_s=self.ctx.settings.guest_timeout_s)
        if not self.services.guest.signals_ready:
            # This guest runs no code of its own (the fake): signal for it.
            self.call(
                self.stacks.signal,
                stack_id,
                READY_HANDLE,
                {"status": "SUCCESS", "reason": "the datastore is RUNNING", "id": "1"},
            )
        stack = self.wait_stack(stack_id, "CREATE")
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
    implements it; a Heat service without it reboots through compute, see heat.py)."""

    def execute(self) -> None:
        self.check_not_cancelled()
        stack_id = self.stack_id()
        self.call(self.stacks.signal, stack_id, SERVER, {"action": REBOOT})
        server_id = self.ctx.store.get(self.instance_id).compute_instance_id or ""
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
