"""Configuration groups on an instance: guest tasks, the same under every resource
manager (the seed's `update_overrides` and `unassign_configuration`).

The guest applies the group's values at once where the datastore allows it (a reload)
and says which settings wait for a restart; the instance then shows RESTART_REQUIRED
until the `restart` action, or NONE when nothing waits (Trove decides per group, cellar
per parameter: only a restart-only setting that really changed asks for a restart). On a
new instance (`configuration` at create) the datastore is restarted at once instead.
"""

from __future__ import annotations

from typing import Any

from cellar.domain.status import IDLE_TASKS, InstanceTask, ServiceStatus
from cellar.resource_managers.base import ResourceManager
from cellar.resource_managers.common import CellarTask, wait_for_service
from cellar.taskmanager.store import DbInstanceStore


class ApplyConfiguration(CellarTask):
    """Give the guest the group's values (None: remove them), then set the instance's
    task from what waits for a restart; with `restart`, restart the datastore instead."""

    def __init__(
        self,
        manager: ResourceManager,
        store: DbInstanceStore,
        instance_id: str,
        values: dict[str, str] | None,
        *,
        restart: bool = False,
        name: str,
    ) -> None:
        super().__init__(manager.ctx, instance_id, name=name)
        self.store = store
        self.values = values
        self.restart = restart

    def execute(self) -> str:
        self.check_not_cancelled()
        guest = self.services.guest
        if self.values is None:
            pending = self.call(guest.unassign_configuration, self.instance_id)
        else:
            pending = self.call(guest.update_overrides, self.instance_id, self.values)
        if self.restart:
            if pending:
                self.call(guest.restart, self.instance_id)
                timeout = self.ctx.settings.guest_timeout_s
                wait_for_service(self, ServiceStatus.RUNNING, timeout_s=timeout)
                return f"restarted for {', '.join(pending)}"
            return "in force"
        task = InstanceTask(self.store.get(self.instance_id).task)
        if task in IDLE_TASKS:
            target = InstanceTask.RESTART_REQUIRED if pending else InstanceTask.NONE
            self.store.change_task(self.instance_id, target)
        if pending:
            return f"waiting for a restart: {', '.join(pending)}"
        return "in force"


def configuration_steps(
    manager: ResourceManager, store: DbInstanceStore, instance_id: str, args: dict[str, Any]
) -> list[Any]:
    """update_overrides: {"values": {name: value}}; unassign_configuration: {}."""
    values = args.get("values")
    step = "configuration.apply" if values is not None else "configuration.unassign"
    return [ApplyConfiguration(manager, store, instance_id, values, name=step)]
