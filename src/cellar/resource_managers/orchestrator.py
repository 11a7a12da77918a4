"""The orchestrator resource manager: each instance is a stack (HOT template as data),
created, updated (PATCH), signalled and deleted through the orchestration service.

What it does not override stays unsupported (HTTP 501 with the operation's name):
security-group rule changes and DNS records are part of the template and will be stack
updates once the stored template can be edited; clusters come later."""

from __future__ import annotations

from taskflow.patterns import linear_flow

from cellar.domain.specs import FlavorSpec, InstanceSpec
from cellar.orchestration.templates.instance import update_parameters
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
