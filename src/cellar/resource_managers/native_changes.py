"""The steps of the native manager that change a running instance: resize, reboot,
volume growth and security-group rules. Like the provision steps, each is idempotent
(a resumed flow runs its interrupted step again) and reverts what it did."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from cellar.domain.errors import CellarError
from cellar.domain.specs import FlavorSpec, RuleSpec
from cellar.domain.status import ServerStatus
from cellar.drivers.base import ResourceNotFound
from cellar.drivers.compute.base import Server
from cellar.drivers.network.base import SecurityGroup
from cellar.drivers.volume.base import Volume, VolumeStatus
from cellar.resource_managers.base import ManagerContext
from cellar.resource_managers.common import CellarTask, wait_for_server


def _server_id(t: CellarTask) -> str:
    server_id = t.ctx.store.get(t.instance_id).compute_instance_id
    if not server_id:
        raise CellarError(f"Instance {t.instance_id} has no server.")
    return server_id


class ResizeServer(CellarTask):
    def __init__(self, ctx: ManagerContext, iid: str, flavor: FlavorSpec, *, name: str) -> None:
        super().__init__(ctx, iid, name=name)
        self.flavor = flavor

    def execute(self) -> None:
        self.check_not_cancelled()
        compute, server_id = self.services.compute, _server_id(self)
        server: Server = self.call(compute.get_server, server_id)
        if server.status is ServerStatus.ACTIVE:
            if server.flavor_id == self.flavor.id:
                return  # resized and confirmed before a restart of the task manager
            self.call(compute.resize_server, server_id, self.flavor)
        elif server.status not in (ServerStatus.RESIZE, ServerStatus.VERIFY_RESIZE):
            raise CellarError(f"Server {server_id} is {server.status.value}: cannot resize it.")
        wait_for_server(self, server_id, ServerStatus.VERIFY_RESIZE, "be resized")

    def revert(self, *args: Any, **kwargs: Any) -> None:
        compute, server_id = self.services.compute, _server_id(self)
        server: Server = self.call(compute.get_server, server_id)
        if server.status is ServerStatus.VERIFY_RESIZE:
            self.call(compute.revert_resize, server_id)
        wait_for_server(
            self, server_id, ServerStatus.ACTIVE, "revert its resize", cancellable=False
        )


class ConfirmResize(CellarTask):
    def __init__(self, ctx: ManagerContext, iid: str, flavor: FlavorSpec, *, name: str) -> None:
        super().__init__(ctx, iid, name=name)
        self.flavor = flavor

    def execute(self) -> None:
        compute, server_id = self.services.compute, _server_id(self)
        server: Server = self.call(compute.get_server, server_id)
        if server.status is ServerStatus.VERIFY_RESIZE:
            self.call(compute.confirm_resize, server_id)
        wait_for_server(
            self, server_id, ServerStatus.ACTIVE, "confirm its resize", cancellable=False
        )
        self.ctx.store.set_flavor(self.instance_id, self.flavor.id)


class RebootServer(CellarTask):
    def execute(self) -> None:
        self.check_not_cancelled()
        compute, server_id = self.services.compute, _server_id(self)
        self.call(compute.reboot_server, server_id)
        wait_for_server(self, server_id, ServerStatus.ACTIVE, "reboot")


class ExtendVolume(CellarTask):
    def __init__(self, ctx: ManagerContext, iid: str, size_gb: int, *, name: str) -> None:
        super().__init__(ctx, iid, name=name)
        self.size_gb = size_gb

    def execute(self) -> None:
        self.check_not_cancelled()
        volume_id = self.ctx.store.get(self.instance_id).volume_id
        if not volume_id:
            raise CellarError(f"Instance {self.instance_id} has no volume.")
        vol_driver = self.services.volume
        volume: Volume = self.call(vol_driver.get_volume, volume_id)
        if volume.size_gb < self.size_gb:
            self.call(vol_driver.extend_volume, volume_id, self.size_gb)
        self.wait_for(
            f"volume {volume_id} to grow to {self.size_gb} GB",
            lambda: vol_driver.get_volume(volume_id),
            lambda v: v.size_gb >= self.size_gb and v.status is not VolumeStatus.EXTENDING,
            failed=lambda v: "the volume went to error" if v.status is VolumeStatus.ERROR else None,
            timeout_s=self.ctx.settings.volume_timeout_s,
        )


class ResizeFilesystem(CellarTask):
    def __init__(self, ctx: ManagerContext, iid: str, size_gb: int, *, name: str) -> None:
        super().__init__(ctx, iid, name=name)
        self.size_gb = size_gb

    def execute(self) -> None:
        self.call(self.services.guest.resize_fs, self.instance_id)
        self.ctx.store.set_volume_size(self.instance_id, self.size_gb)


# Security-group rules of a running instance.


class RuleTask(CellarTask):
    def __init__(self, ctx: ManagerContext, iid: str, rule_id: str, *, name: str) -> None:
        super().__init__(ctx, iid, name=name)
        self.rule_id = rule_id

    def ensure_rule(self, rule: RuleSpec) -> str:
        """The id of the group's rule matching `rule`, created if missing."""
        net, group_id = self.services.network, self.security_group_id()
        group: SecurityGroup = self.call(net.get_security_group, group_id)
        for r in group.rules:
            if (r.protocol, r.from_port, r.to_port, r.cidr) == (
                rule.protocol,
                rule.from_port,
                rule.to_port,
                rule.cidr,
            ):
                return r.id
        created = self.call(
            net.create_security_group_rule,
            group_id=group_id,
            protocol=rule.protocol,
            from_port=rule.from_port,
            to_port=rule.to_port,
            cidr=rule.cidr,
        )
        return str(created.id)

    def drop_rule(self, provider_id: str | None) -> None:
        if provider_id:
            with contextlib.suppress(ResourceNotFound):
                self.call(self.services.network.delete_security_group_rule, provider_id)


class AddRule(RuleTask):
    def __init__(
        self, ctx: ManagerContext, iid: str, rule_id: str, rule: RuleSpec, *, name: str
    ) -> None:
        super().__init__(ctx, iid, rule_id, name=name)
        self.rule = rule

    def execute(self) -> None:
        self.ctx.store.set_rule_provider_id(self.rule_id, self.ensure_rule(self.rule))

    def revert(self, *args: Any, **kwargs: Any) -> None:
        self.drop_rule(self.ctx.store.rule_provider_id(self.rule_id))
        self.ctx.store.set_rule_provider_id(self.rule_id, None)


class ChangeRuleCidr(RuleTask):
    """Add the rule with the new CIDR first, then drop the old: no moment without access."""

    def __init__(self, ctx: ManagerContext, iid: str, rule_id: str, cidr: str, *, name: str):
        super().__init__(ctx, iid, rule_id, name=name)
        self.cidr = cidr

    def execute(self) -> None:
        old = self.ctx.store.rule(self.rule_id)
        new_rule = dataclasses.replace(old.spec, cidr=self.cidr)
        new_id = self.ensure_rule(new_rule)
        if old.provider_id and old.provider_id != new_id:
            self.drop_rule(old.provider_id)
        self.ctx.store.update_rule(self.rule_id, cidr=self.cidr, provider_id=new_id)


class DeleteRule(RuleTask):
    def execute(self) -> None:
        self.drop_rule(self.ctx.store.rule_provider_id(self.rule_id))
        self.ctx.store.set_rule_provider_id(self.rule_id, None)
