"""Resource plugins over the cloud drivers (`cellar.drivers.registry.Services`).

`cloud_registry(services, flavors=..., signal_url=...)` gives a `Registry` with Heat's
OS::Heat types plus the cloud types the instance template uses: OS::Neutron::SecurityGroup,
OS::Cinder::Volume, OS::Nova::Server, OS::Cinder::VolumeAttachment,
OS::Designate::RecordSet, OS::Heat::WaitConditionHandle and OS::Heat::WaitCondition.

Every create first looks its resource up by name (idempotent), every poll reads the driver's
state, every delete tolerates a resource already gone. The plugin classes are bound to one
`_Cloud` (the drivers, the flavor lookup, the signal URL and the signals received by the wait
condition handles) by subclassing them in `cloud_registry`.

Wait condition signals are kept in memory (`_Signals`, by handle id) and copied into the
handle's resource data; a restarted engine does not reload them.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from cellar.domain.errors import CellarError, NotFound
from cellar.domain.specs import FlavorSpec
from cellar.domain.status import ServerStatus
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
from cellar.orchestration.stacks import REBOOT

SUCCESS, FAILURE = "SUCCESS", "FAILURE"
# Volume statuses (the values of the volume driver's VolumeStatus).
AVAILABLE, IN_USE, ERROR = "available", "in-use", "error"


# Set by `LocalStackService.signal` when called without a handle token: the caller is the
# stack's owner (as on Heat's authenticated signal API), not an agent with a token.
OWNER = "_owner"


class CloudServices(Protocol):
    """What the plugins use of `cellar.drivers.registry.Services` (the import contract
    keeps `cellar.orchestration` and `cellar.drivers` apart: drivers are duck-typed, their
    not-found errors are `cellar.domain.errors.NotFound`)."""

    @property
    def compute(self) -> Any: ...

    @property
    def volume(self) -> Any: ...

    @property
    def network(self) -> Any: ...

    @property
    def dns(self) -> Any: ...


SIGNAL_KEYS = frozenset({"status", "reason", "data", "id"})


class WaitConditionFailure(ResourceFailure):
    """A FAILURE signal arrived (Heat's exception name, so the reason reads as Heat's)."""


class WaitConditionTimeout(ResourceFailure):
    """Fewer than `count` SUCCESS signals arrived in time: "N of M received"."""


class SignalRefused(ResourceFailure):
    """A signal with a wrong token or an invalid body."""


class _Signals:
    """The signals of every wait condition handle, by handle id, in arrival order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_handle: dict[str, dict[str, dict[str, Any]]] = {}

    def add(self, handle_id: str, signal: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Store `signal` (Heat's defaults filled in) and return all of the handle's."""
        with self._lock:
            signals = self._by_handle.setdefault(handle_id, {})
            number = len(signals) + 1
            sid = str(signal.get("id") or number)
            signals[sid] = {
                "status": signal.get("status") or SUCCESS,
                "reason": signal.get("reason") or f"Signal {number} received",
                "data": signal.get("data"),
            }
            return {k: dict(v) for k, v in signals.items()}

    def get(self, handle_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(v) for v in self._by_handle.get(handle_id, {}).values()]

    def drop(self, handle_id: str) -> None:
        with self._lock:
            self._by_handle.pop(handle_id, None)


@dataclass
class _Cloud:
    services: CloudServices
    flavors: Callable[[str], FlavorSpec]
    signal_url: Callable[[str, str], str]
    signals: _Signals = field(default_factory=_Signals)


class CloudResource(Resource):
    """A resource bound to a `_Cloud` (set on the subclasses `cloud_registry` makes)."""

    cloud: ClassVar[_Cloud]

    def _name(self) -> str:
        name = self.properties.get("name")
        return str(name) if name else f"{self.name}-{self.physical_id[:8]}"


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


# Servers -----------------------------------------------------------------------------------


def _user_data(text: str | None) -> dict[str, str] | None:
    if not text:
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        raise ResourceFailure("user_data is not a JSON object") from None
    if not isinstance(parsed, dict):
        raise ResourceFailure("user_data is not a JSON object")
    return {
        str(k): v if isinstance(v, str) else json.dumps(v, sort_keys=True)
        for k, v in parsed.items()
    }


class Server(CloudResource):
    type_name = "OS::Nova::Server"
    properties_schema = {
        "name": Prop("string"),
        "image": Prop("string", required=True),
        "flavor": Prop("string", required=True, update_allowed=True),
        "flavor_update_policy": Prop("string", default="RESIZE", update_allowed=True),
        "security_groups": Prop("list", default=[]),
        "user_data": Prop("string", default="", update_allowed=True),
        "user_data_format": Prop("string", default="HEAT_CFNTOOLS", update_allowed=True),
        "user_data_update_policy": Prop("string", default="REPLACE", update_allowed=True),
        "config_drive": Prop("boolean"),
        "metadata": Prop("map", update_allowed=True),  # ignored after create
        "networks": Prop("list", update_allowed=True),  # ignored: the cloud chooses
    }
    attributes_schema = frozenset({"first_address", "networks"})

    @classmethod
    def needs_replace(
        cls, changed: set[str], new: Mapping[str, Any], old: Mapping[str, Any]
    ) -> bool:
        if "flavor" in changed and new.get("flavor_update_policy") == "REPLACE":
            return True
        if "user_data" in changed and new.get("user_data_update_policy") != "IGNORE":
            return True
        return super().needs_replace(changed, new, old)

    def _status(self) -> ServerStatus:
        server = self.cloud.services.compute.get_server(self.physical_id)
        if server.status is ServerStatus.ERROR:
            raise ResourceFailure(f"Server {self.physical_id} went to status ERROR")
        return ServerStatus(server.status.value)

    def handle_create(self) -> Any:
        compute = self.cloud.services.compute
        server = compute.find_server(self._name())
        if server is None:
            metadata = self.properties.get("metadata") or {}
            server = compute.create_server(
                name=self._name(),
                flavor=self.cloud.flavors(str(self.properties["flavor"])),
                image=str(self.properties["image"]),
                security_group_ids=tuple(
                    str(g) for g in self.properties.get("security_groups") or []
                ),
                user_data=_user_data(self.properties.get("user_data")),
                metadata={str(k): str(v) for k, v in metadata.items()},
            )
        self.physical_id = server.id
        return None

    def check_create_complete(self, handle: Any) -> bool:
        return self._status() is ServerStatus.ACTIVE

    def handle_update(self, new_properties: Mapping[str, Any], changed: set[str]) -> Any:
        self.properties = dict(new_properties)
        if "flavor" not in changed:
            return None
        flavor = self.cloud.flavors(str(self.properties["flavor"]))
        self.cloud.services.compute.resize_server(self.physical_id, flavor)
        return {"confirmed": False}

    def check_update_complete(self, handle: Any) -> bool:
        if handle is None:
            return True
        status = self._status()
        if not handle["confirmed"]:
            if status is ServerStatus.VERIFY_RESIZE:
                self.cloud.services.compute.confirm_resize(self.physical_id)
                handle["confirmed"] = True
            return False
        return status is ServerStatus.ACTIVE

    def handle_signal(self, details: Mapping[str, Any]) -> Any:
        if details.get("action") != REBOOT:
            raise SignalRefused(f"OS::Nova::Server handles only {{'action': {REBOOT!r}}}")
        self.cloud.services.compute.reboot_server(self.physical_id)
        return None

    def check_signal_complete(self, handle: Any) -> bool:
        return self._status() is ServerStatus.ACTIVE

    def handle_delete(self) -> Any:
        compute = self.cloud.services.compute
        ids = {self.physical_id}
        # A create that failed after the cloud made the server (Nova leaves it in ERROR)
        # never learned its id: find it by name, so a rollback leaves nothing behind.
        found = compute.find_server(self._name())
        if found is not None:
            ids.add(found.id)
        for server_id in ids:
            with contextlib.suppress(NotFound):
                compute.delete_server(server_id)
        return sorted(ids)

    def check_delete_complete(self, handle: Any) -> bool:
        for server_id in handle or [self.physical_id]:
            try:
                server = self.cloud.services.compute.get_server(server_id)
            except NotFound:
                continue
            if server.status is not ServerStatus.DELETED:
                return False
        return True

    def get_attribute(self, attribute: str) -> Any:
        try:
            server = self.cloud.services.compute.get_server(self.physical_id)
        except NotFound:
            return None
        if attribute == "first_address":
            return server.addresses[0] if server.addresses else ""
        if attribute == "networks":
            networks = self.properties.get("networks") or [{}]
            first = networks[0] if isinstance(networks[0], Mapping) else {}
            return {str(first.get("network") or "default"): list(server.addresses)}
        return None


class VolumeAttachment(CloudResource):
    type_name = "OS::Cinder::VolumeAttachment"
    properties_schema = {
        "instance_uuid": Prop("string", required=True),
        "volume_id": Prop("string", required=True),
        "mountpoint": Prop("string"),
    }

    def _ids(self) -> tuple[str, str]:
        return str(self.properties["instance_uuid"]), str(self.properties["volume_id"])

    def handle_create(self) -> Any:
        server_id, volume_id = self._ids()
        volume = self.cloud.services.volume.get_volume(volume_id)
        if volume.attached_to != server_id:
            self.cloud.services.compute.attach_volume(server_id, volume_id)
        return None

    def check_create_complete(self, handle: Any) -> bool:
        server_id, volume_id = self._ids()
        volume = self.cloud.services.volume.get_volume(volume_id)
        if volume.status.value == ERROR:
            raise ResourceFailure(f"Volume {volume_id} went to status error")
        return bool(volume.status.value == IN_USE and volume.attached_to == server_id)

    def handle_delete(self) -> Any:
        server_id, volume_id = self._ids()
        try:
            volume = self.cloud.services.volume.get_volume(volume_id)
            if volume.attached_to == server_id:
                self.cloud.services.compute.detach_volume(server_id, volume_id)
        except NotFound:
            pass
        return None

    def check_delete_complete(self, handle: Any) -> bool:
        server_id, volume_id = self._ids()
        try:
            volume = self.cloud.services.volume.get_volume(volume_id)
        except NotFound:
            return True
        return bool(volume.attached_to != server_id)


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


# Wait conditions ---------------------------------------------------------------------------


class WaitConditionHandle(CloudResource):
    """OS::Heat::WaitConditionHandle (TOKEN_SIGNAL): `endpoint` and `token` to POST a
    signal `{status, reason, data, id}` to; the token travels as `token` in the details."""

    type_name = "OS::Heat::WaitConditionHandle"
    properties_schema = {"signal_transport": Prop("string", default="TOKEN_SIGNAL")}
    attributes_schema = frozenset({"endpoint", "token", "curl_cli", "signal"})

    def handle_create(self) -> Any:
        self.data["token"] = secrets.token_hex(16)
        self.data["endpoint"] = self.cloud.signal_url(self.stack_id, self.name)
        return None

    def handle_signal(self, details: Mapping[str, Any]) -> Any:
        token = details.get("token")
        owner = details.get(OWNER) is True  # the stack's owner, through the service
        if not owner and (
            not isinstance(token, str)
            or not secrets.compare_digest(token, str(self.data.get("token", "")))
        ):
            raise SignalRefused("Signal refused: invalid token")
        body = {k: v for k, v in details.items() if k not in ("token", OWNER)}
        unknown = set(body) - SIGNAL_KEYS
        if unknown:
            raise SignalRefused(f"Signal refused: unknown keys {sorted(unknown)}")
        status = body.get("status") or SUCCESS
        if status not in (SUCCESS, FAILURE):
            raise SignalRefused(f"Signal refused: status must be {SUCCESS} or {FAILURE}")
        self.data["signals"] = self.cloud.signals.add(self.physical_id, body)
        return None

    def handle_delete(self) -> Any:
        self.cloud.signals.drop(self.physical_id)
        return None

    def get_attribute(self, attribute: str) -> Any:
        endpoint, token = self.data.get("endpoint"), self.data.get("token")
        if attribute == "endpoint":
            return endpoint
        if attribute == "token":
            return token
        if attribute == "curl_cli":
            return (
                f"curl -i -X POST -H 'X-Auth-Token: {token}' "
                "-H 'Content-Type: application/json' -H 'Accept: application/json' "
                f"{endpoint}"
            )
        if attribute == "signal":
            return json.dumps({"url": endpoint, "token": token})
        return None


class WaitCondition(CloudResource):
    type_name = "OS::Heat::WaitCondition"
    properties_schema = {
        "handle": Prop("string", required=True),
        "timeout": Prop("number", required=True),
        "count": Prop("integer", default=1, update_allowed=True),
    }
    attributes_schema = frozenset({"data"})

    def _start(self) -> float:
        timeout = float(self.properties["timeout"])
        if not 1 <= timeout <= 43200:
            raise ResourceFailure(f"timeout {timeout:g} is not in [1, 43200]")
        return time.monotonic() + timeout

    def _check(self, deadline: float) -> bool:
        signals = self.cloud.signals.get(str(self.properties["handle"]))
        failures = [s["reason"] for s in signals if s["status"] != SUCCESS]
        if failures:
            raise WaitConditionFailure(";".join(failures))
        count = int(self.properties.get("count") or 1)
        if len(signals) >= count:
            return True
        if time.monotonic() < deadline:
            return False
        message = f"{len(signals)} of {count} received"
        reasons = ";".join(s["reason"] for s in signals)
        raise WaitConditionTimeout(f"{message} - {reasons}" if reasons else message)

    def handle_create(self) -> Any:
        return self._start()

    def check_create_complete(self, handle: Any) -> bool:
        return self._check(float(handle))

    def handle_update(self, new_properties: Mapping[str, Any], changed: set[str]) -> Any:
        self.properties = dict(new_properties)
        return self._start()

    def check_update_complete(self, handle: Any) -> bool:
        return self._check(float(handle))

    def get_attribute(self, attribute: str) -> Any:
        if attribute != "data":
            return None
        signals = self.cloud.signals.get(str(self.properties.get("handle") or ""))
        return json.dumps({str(i + 1): s["data"] for i, s in enumerate(signals)})


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
) -> Registry:
    """Heat's OS::Heat types plus the cloud types, bound to `services`.

    `flavors(flavor_id)`: the FlavorSpec of a template's `flavor`; `signal_url(stack_id,
    resource_name)`: the `endpoint` of a wait condition handle.
    """
    cloud = _Cloud(services, flavors, signal_url)
    registry = Registry(NoneResource, Value, RandomString, TestResource)
    for base in CLOUD_TYPES:
        bound: type[Resource] = type(base.__name__, (base,), {"cloud": cloud})
        registry.register(bound)
    return registry
