"""Resource plugins over the cloud drivers (`cellar.drivers.registry.Services`).

`cloud_registry(services, flavors=..., signal_url=...)` gives a `Registry` with Heat's
OS::Heat types plus the cloud types the instance template uses: OS::Neutron::SecurityGroup,
OS::Cinder::Volume, OS::Nova::Server, OS::Cinder::VolumeAttachment,
OS::Designate::RecordSet, OS::Heat::WaitConditionHandle and OS::Heat::WaitCondition.

Every create first looks its resource up by name (idempotent), every poll reads the driver's
state, every delete tolerates a resource already gone. The plugin classes are bound to one
`_Cloud` (the drivers, the flavor lookup, the signal URL and the signals received by the wait
condition handles) by subclassing them in `cloud_registry`.

Wait condition signals go to a `SignalStore` (by handle id): in memory by default, in the
database for the task manager's engine, where the API stores the signals agents POST.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

from cellar.domain.errors import CellarError, NotFound
from cellar.domain.specs import FlavorSpec
from cellar.orchestration.local.cloud_base import (
    AVAILABLE,
    ERROR,
    IN_USE,
    CloudResource,
    CloudServices,
    MemorySignals,
    SignalStore,
    _Cloud,
)
from cellar.orchestration.local.cloud_server import Server, VolumeAttachment
from cellar.orchestration.local.resources import (
    NoneResource,
    Prop,
    RandomString,
    Registry,
    Resource,
    ResourceFailure,
    TestResource,
    Value,
)
from cellar.orchestration.local.wait_condition import WaitCondition, WaitConditionHandle

# Security groups -------------------------------------------------------------------------


def _rule_key(rule: Mapping[str, Any]) -> tuple[str, int, int, str] | None:
    """(protocol, from, to, cidr) of an ingress rule; None for what the driver cannot hold."""
    if rule.get("direction", "ingress") != "ingress":
        return None
    protocol = str(rule.get("protocol") or "tcp")
    low = int(rule.get("port_range_min") or 1)
    high = int(rule.get("port_range_max") or (low if rule.get("port_range_min") else 65535))
    default = "::/0" if rule.get("ethertype") == "IPv6" else "0.0.0.0/0"
    return protocol, low, high, str(rule.get("remote_ip_prefix") or default)


class SecurityGroup(CloudResource):
    type_name = "OS::Neutron::SecurityGroup"
    properties_schema = {
        "name": Prop("string"),
        "description": Prop("string", default=""),
        "rules": Prop("list", default=[], update_allowed=True),
    }

    def handle_create(self) -> Any:
        network = self.cloud.services.network
        group = network.find_security_group(self._name())
        if group is None:
            group = network.create_security_group(
                name=self._name(), description=self.properties.get("description") or ""
            )
        self.physical_id = group.id
        return None

    def check_create_complete(self, handle: Any) -> bool:
        # Rules are added once the engine holds the group's id, so a failure here still
        # lets a rollback delete the group.
        self._reconcile(self.properties.get("rules") or [])
        return True

    def needs_replace_failed(self) -> bool:
        """Heat's rule for Neutron resources: replace a FAILED group only if it is gone. A
        group whose rule change failed is still the servers' group (and a replacement
        would find it again by name, then delete it with the old record)."""
        if not self.physical_id:
            return True
        try:
            self.cloud.services.network.get_security_group(self.physical_id)
        except NotFound:
            return True
        return False

    def _reconcile(self, rules: list[Any]) -> None:
        network = self.cloud.services.network
        wanted = {key for key in (_rule_key(rule) for rule in rules) if key is not None}
        group = network.get_security_group(self.physical_id)
        have: set[tuple[str, int, int, str]] = set()
        for rule in group.rules:
            key = (rule.protocol, rule.from_port, rule.to_port, rule.cidr)
            if key in wanted and key not in have:
                have.add(key)
                continue
            with contextlib.suppress(NotFound):
                network.delete_security_group_rule(rule.id)
        for protocol, low, high, cidr in sorted(wanted - have):
            network.create_security_group_rule(
                group_id=self.physical_id, protocol=protocol, from_port=low, to_port=high, cidr=cidr
            )

    def handle_update(self, new_properties: Mapping[str, Any], changed: set[str]) -> Any:
        self.properties = dict(new_properties)
        self._reconcile(self.properties.get("rules") or [])
        return None

    def handle_delete(self) -> Any:
        return time.monotonic() + 60.0

    def check_delete_complete(self, handle: Any) -> bool:
        try:
            self.cloud.services.network.delete_security_group(self.physical_id)
        except NotFound:
            return True
        except CellarError:  # in use by a server still going away
            if time.monotonic() > handle:
                raise
            return False
        return True


# Volumes -----------------------------------------------------------------------------------


_DELETING = "deleting"  # the volume driver's VolumeStatus.DELETING


class Volume(CloudResource):
    type_name = "OS::Cinder::Volume"
    properties_schema = {
        "name": Prop("string"),
        "size": Prop("number", required=True, update_allowed=True),
        "description": Prop("string", update_allowed=True),
        "metadata": Prop("map", update_allowed=True),  # not kept by the driver
    }

    def handle_create(self) -> Any:
        volumes = self.cloud.services.volume
        volume = volumes.find_volume(self._name())
        if volume is None:
            volume = volumes.create_volume(name=self._name(), size_gb=self._size())
        self.physical_id = volume.id
        return None

    def _size(self) -> int:
        return int(self.properties["size"])

    def _settled(self, size: int | None = None) -> bool:
        volume = self.cloud.services.volume.get_volume(self.physical_id)
        if volume.status.value == ERROR:
            raise ResourceFailure(f"Volume {self.physical_id} went to status error")
        if size is not None and volume.size_gb < size:
            return False
        return volume.status.value in (AVAILABLE, IN_USE)

    def check_create_complete(self, handle: Any) -> bool:
        return self._settled()

    def needs_replace_failed(self) -> bool:
        """Heat's rule for OS::Cinder::Volume: replace a FAILED volume only if it is gone,
        in error or being deleted; a usable one keeps the data, so it is kept in place."""
        if not self.physical_id:
            return True
        try:
            volume = self.cloud.services.volume.get_volume(self.physical_id)
        except NotFound:
            return True
        return bool(volume.status.value in (ERROR, _DELETING))

    def handle_update(self, new_properties: Mapping[str, Any], changed: set[str]) -> Any:
        old = self._size()
        self.properties = dict(new_properties)
        new = self._size()
        if new < old:
            raise ResourceFailure(
                f"Volume {self.physical_id} is {old} GB: it can only grow, not become {new} GB."
            )
        if new > old:
            self.cloud.services.volume.extend_volume(self.physical_id, new)
        return new

    def check_update_complete(self, handle: Any) -> bool:
        return self._settled(int(handle))

    def handle_delete(self) -> Any:
        with contextlib.suppress(NotFound):
            self.cloud.services.volume.delete_volume(self.physical_id)
        return None

    def check_delete_complete(self, handle: Any) -> bool:
        try:
            volume = self.cloud.services.volume.get_volume(self.physical_id)
        except NotFound:
            return True
        if volume.status.value == ERROR:
            raise ResourceFailure(f"Volume {self.physical_id} went to status error")
        return False


# DNS ---------------------------------------------------------------------------------------


class RecordSet(CloudResource):
    type_name = "OS::Designate::RecordSet"
    properties_schema = {
        "zone": Prop("string", required=True),
        "name": Prop("string"),
        "type": Prop("string", required=True),
        "records": Prop("list", required=True, update_allowed=True),
        "ttl": Prop("integer", update_allowed=True),  # the driver cannot change it later
        "description": Prop("string", update_allowed=True),
    }

    def _fqdn(self) -> str:
        name = str(self.properties.get("name") or self.name)
        zone = str(self.properties["zone"]).rstrip(".")
        if name.endswith("."):
            return name.rstrip(".")
        return f"{name}.{zone}" if zone and not name.endswith(zone) else name

    def _data(self) -> str:
        records = self.properties.get("records") or []
        if not records or not records[0]:
            raise ResourceFailure("records: no value to publish")
        return str(records[0])

    def handle_create(self) -> Any:
        dns = self.cloud.services.dns
        rtype = str(self.properties["type"])
        record = dns.find_record(self._fqdn(), rtype)
        if record is None:
            ttl = self.properties.get("ttl")
            record = dns.create_record(
                name=self._fqdn(), rtype=rtype, data=self._data(), ttl=int(ttl or 300)
            )
        elif record.data != self._data():
            record = dns.update_record(record.id, data=self._data())
        self.physical_id = record.id
        return None

    def handle_update(self, new_properties: Mapping[str, Any], changed: set[str]) -> Any:
        self.properties = dict(new_properties)
        if "records" in changed:
            self.cloud.services.dns.update_record(self.physical_id, data=self._data())
        return None

    def handle_delete(self) -> Any:
        with contextlib.suppress(NotFound):
            self.cloud.services.dns.delete_record(self.physical_id)
        return None


CLOUD_TYPES: tuple[type[CloudResource], ...] = (
    SecurityGroup,
    Volume,
    Server,
    VolumeAttachment,
    RecordSet,
    WaitConditionHandle,
    WaitCondition,
)


def cloud_registry(
    services: CloudServices,
    *,
    flavors: Callable[[str], FlavorSpec],
    signal_url: Callable[[str, str], str],
    signals: SignalStore | None = None,
) -> Registry:
    """Heat's OS::Heat types plus the cloud types, bound to `services`.

    `flavors(flavor_id)`: the FlavorSpec of a template's `flavor`; `signal_url(stack_id,
    resource_name)`: the `endpoint` of a wait condition handle; `signals`: where the
    handles' signals are kept (in memory if None).
    """
    cloud = _Cloud(services, flavors, signal_url, signals or MemorySignals())
    registry = Registry(NoneResource, Value, RandomString, TestResource)
    for base in CLOUD_TYPES:
        bound: type[Resource] = type(base.__name__, (base,), {"cloud": cloud})
        registry.register(bound)
    return registry
