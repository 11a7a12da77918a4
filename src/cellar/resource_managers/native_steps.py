"""The steps of the native manager. Each `execute` looks its resource up by name before
creating it (a resumed flow runs its interrupted step again) and records the cloud id
as soon as it exists; each `revert` removes what the step made."""

from __future__ import annotations

import contextlib
from typing import Any

from cellar.domain.errors import CellarError
from cellar.domain.specs import InstanceSpec, resource_name
from cellar.domain.status import ServerStatus
from cellar.drivers.base import ResourceNotFound
from cellar.drivers.compute.base import Server
from cellar.drivers.network.base import SecurityGroup
from cellar.drivers.volume.base import Volume, VolumeStatus
from cellar.resource_managers.base import ManagerContext
from cellar.resource_managers.common import CellarTask


class SpecTask(CellarTask):
    def __init__(self, ctx: ManagerContext, spec: InstanceSpec, *, name: str, provides: str):
        super().__init__(ctx, spec.instance_id, name=name, provides=provides)
        self.spec = spec


def server_failed(server: Server) -> str | None:
    return "the server went to ERROR" if server.status is ServerStatus.ERROR else None


class CreateSecurityGroup(SpecTask):
    def __init__(self, ctx: ManagerContext, spec: InstanceSpec, *, name: str) -> None:
        super().__init__(ctx, spec, name=name, provides="security_group_id")

    def execute(self) -> str:
        self.check_not_cancelled()
        net = self.services.network
        group: SecurityGroup | None = self.call(net.find_security_group, self.spec.resource_name)
        if group is None:
            group = self.call(
                net.create_security_group,
                name=self.spec.resource_name,
                description=f"cellar instance {self.instance_id}",
            )
        self.ctx.store.record_resources(self.instance_id, security_group_id=group.id)
        have = {(r.protocol, r.from_port, r.to_port, r.cidr): r.id for r in group.rules}
        made = []
        for rule in self.spec.ingress_rules():
            key = (rule.protocol, rule.from_port, rule.to_port, rule.cidr)
            if key not in have:
                have[key] = self.call(
                    net.create_security_group_rule,
                    group_id=group.id,
                    protocol=rule.protocol,
                    from_port=rule.from_port,
                    to_port=rule.to_port,
                    cidr=rule.cidr,
                ).id
            made.append((rule, have[key]))
        self.ctx.store.record_group_rules(self.instance_id, made)
        return group.id

    def revert(self, *args: Any, **kwargs: Any) -> None:
        delete_security_group(self)


class CreateVolume(SpecTask):
    def __init__(self, ctx: ManagerContext, spec: InstanceSpec, *, name: str) -> None:
        super().__init__(ctx, spec, name=name, provides="volume_id")

    def execute(self) -> str:
        self.check_not_cancelled()
        vol_driver = self.services.volume
        volume: Volume | None = self.call(vol_driver.find_volume, self.spec.resource_name)
        if volume is None:
            volume = self.call(
                vol_driver.create_volume,
                name=self.spec.resource_name,
                size_gb=self.spec.volume_size_gb,
            )
        self.ctx.store.record_resources(self.instance_id, volume_id=volume.id)
        self.wait_for(
            f"volume {volume.id} to be available",
            lambda: vol_driver.get_volume(volume.id),
            lambda v: v.status in (VolumeStatus.AVAILABLE, VolumeStatus.IN_USE),
            failed=lambda v: "the volume went to error" if v.status is VolumeStatus.ERROR else None,
            timeout_s=self.ctx.settings.volume_timeout_s,
        )
        return volume.id

    def revert(self, *args: Any, **kwargs: Any) -> None:
        delete_volume(self)


class CreateServer(SpecTask):
    def __init__(self, ctx: ManagerContext, spec: InstanceSpec, *, name: str) -> None:
        super().__init__(ctx, spec, name=name, provides="server_id")

    def execute(self, security_group_id: str) -> str:
        self.check_not_cancelled()
        compute = self.services.compute
        server: Server | None = self.call(compute.find_server, self.spec.resource_name)
        if server is None:
            server = self.call(
                compute.create_server,
                name=self.spec.resource_name,
                flavor=self.spec.flavor,
                image=self.spec.image,
                security_group_ids=(security_group_id,),
                user_data=self.services.guest.user_data(self.instance_id),
                metadata={"cellar_instance_id": self.instance_id},
            )
        self.ctx.store.record_resources(self.instance_id, compute_instance_id=server.id)
        ready = self.wait_for(
            f"server {server.id} to be ACTIVE",
            lambda: compute.get_server(server.id),
            lambda s: s.status is ServerStatus.ACTIVE,
            failed=server_failed,
            timeout_s=self.ctx.settings.server_timeout_s,
        )
        self.ctx.store.record_resources(
            self.instance_id, addresses=list(ready.addresses), server_status=ready.status.value
        )
        return server.id

    def revert(self, *args: Any, **kwargs: Any) -> None:
        delete_server(self)


class AttachVolume(CellarTask):
    def execute(self, server_id: str, volume_id: str) -> None:
        self.check_not_cancelled()
        volume: Volume = self.call(self.services.volume.get_volume, volume_id)
        if volume.attached_to != server_id:
            self.call(self.services.compute.attach_volume, server_id, volume_id)
        self.wait_for(
            f"volume {volume_id} to be attached",
            lambda: self.services.volume.get_volume(volume_id),
            lambda v: v.status is VolumeStatus.IN_USE and v.attached_to == server_id,
            timeout_s=self.ctx.settings.volume_timeout_s,
        )

    def revert(self, server_id: str, volume_id: str, *args: Any, **kwargs: Any) -> None:
        try:
            volume: Volume = self.call(self.services.volume.get_volume, volume_id)
        except ResourceNotFound:
            return
        if volume.attached_to == server_id:
            self.call(self.services.compute.detach_volume, server_id, volume_id)


class CreateDnsRecord(CellarTask):
    def execute(self) -> None:
        self.check_not_cancelled()
        record = self.ctx.store.get(self.instance_id)
        if not record.addresses:
            raise CellarError(f"Instance {self.instance_id} has no address to publish in DNS.")
        dns, name, address = self.services.dns, self.hostname(), record.addresses[0]
        existing = self.call(dns.find_record, name, "A")
        if existing is None:
            existing = self.call(dns.create_record, name=name, rtype="A", data=address)
        elif existing.data != address:
            existing = self.call(dns.update_record, existing.id, data=address)
        self.ctx.store.record_resources(self.instance_id, dns_record_id=existing.id, hostname=name)

    def revert(self, *args: Any, **kwargs: Any) -> None:
        delete_dns_record(self)


# Deletion: every step works from the name alone, so it also cleans up after a create
# that stopped before recording an id.


def delete_dns_record(t: CellarTask) -> None:
    existing = t.call(t.services.dns.find_record, t.hostname(), "A")
    if existing is not None:
        with contextlib.suppress(ResourceNotFound):
            t.call(t.services.dns.delete_record, existing.id)
    t.ctx.store.record_resources(t.instance_id, dns_record_id=None)


def delete_server(t: CellarTask) -> None:
    compute = t.services.compute
    server: Server | None = t.call(compute.find_server, resource_name(t.instance_id))
    if server is not None:
        with contextlib.suppress(ResourceNotFound):
            t.call(compute.delete_server, server.id)
        t.wait_for(
            f"server {server.id} to be deleted",
            lambda: _gone(lambda: compute.get_server(server.id)),
            lambda gone: gone,
            timeout_s=t.ctx.settings.server_timeout_s,
            cancellable=False,
        )
    t.ctx.store.record_resources(
        t.instance_id, compute_instance_id=None, server_status=None, addresses=[]
    )


def delete_volume(t: CellarTask) -> None:
    vol_driver = t.services.volume
    volume: Volume | None = t.call(vol_driver.find_volume, resource_name(t.instance_id))
    if volume is not None:
        if volume.attached_to:
            with contextlib.suppress(ResourceNotFound):
                t.call(t.services.compute.detach_volume, volume.attached_to, volume.id)
        t.wait_for(
            f"volume {volume.id} to be detached",
            lambda: _gone(lambda: vol_driver.get_volume(volume.id), keep=True),
            lambda v: v is True or v.attached_to is None,
            timeout_s=t.ctx.settings.volume_timeout_s,
            cancellable=False,
        )
        with contextlib.suppress(ResourceNotFound):
            t.call(vol_driver.delete_volume, volume.id)
    t.ctx.store.record_resources(t.instance_id, volume_id=None)


def delete_security_group(t: CellarTask) -> None:
    net = t.services.network
    group: SecurityGroup | None = t.call(net.find_security_group, resource_name(t.instance_id))
    if group is not None:
        with contextlib.suppress(ResourceNotFound):
            t.call(net.delete_security_group, group.id)
    t.ctx.store.record_resources(t.instance_id, security_group_id=None)


def _gone(fetch: Any, keep: bool = False) -> Any:
    """True once `fetch` raises NotFound; otherwise False (or the resource, with `keep`)."""
    try:
        value = fetch()
    except ResourceNotFound:
        return True
    return value if keep else False


class DeleteDnsRecord(CellarTask):
    def execute(self) -> None:
        delete_dns_record(self)


class DeleteServer(CellarTask):
    def execute(self) -> None:
        delete_server(self)


class DeleteVolume(CellarTask):
    def execute(self) -> None:
        delete_volume(self)


class DeleteSecurityGroup(CellarTask):
    def execute(self) -> None:
        delete_security_group(self)


class ForgetGuest(CellarTask):
    def execute(self) -> None:
        self.call(self.services.guest.forget, self.instance_id)
