"""OS::Nova::Server (flavor resized in place, user data for the config drive, a reboot
signal) and OS::Cinder::VolumeAttachment over the compute and volume drivers."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from cellar.domain.errors import NotFound
from cellar.domain.status import ServerStatus
from cellar.orchestration.local.cloud_base import (
    ERROR,
    IN_USE,
    CloudResource,
    SignalRefused,
)
from cellar.orchestration.local.resources import (
    Prop,
    ResourceFailure,
)
from cellar.orchestration.stacks import REBOOT

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


# Nova statuses of a server that cannot be used again: Heat replaces it (DELETED stands
# for Nova's DELETED and SOFT_DELETED).
_BROKEN = frozenset({ServerStatus.ERROR, ServerStatus.DELETED})
# Set in the resource data once the cloud's id of the server is known.
_SERVER_ID = "server_id"


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

    def needs_replace_failed(self) -> bool:
        """Heat's rule for OS::Nova::Server: replace a FAILED server only if it is gone or
        in ERROR. One that still runs (its record failed by an interrupted action, an
        engine restart) holds the database: the update goes on with it in place."""
        if not self.physical_id:
            return True
        try:
            server = self.cloud.services.compute.get_server(self.physical_id)
        except NotFound:
            return True
        return server.status in _BROKEN

    def handle_create(self) -> Any:
        compute = self.cloud.services.compute
        server = compute.find_server(self._name())
        # A server of that name in ERROR is the one this create replaces, not one to adopt.
        if server is None or server.status in _BROKEN:
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
        self.data[_SERVER_ID] = server.id
        return None

    def check_create_complete(self, handle: Any) -> bool:
        return self._status() is ServerStatus.ACTIVE

    def handle_update(self, new_properties: Mapping[str, Any], changed: set[str]) -> Any:
        self.properties = dict(new_properties)
        if "flavor" not in changed:
            return None
        flavor = self.cloud.flavors(str(self.properties["flavor"]))
        compute = self.cloud.services.compute
        server = compute.get_server(self.physical_id)
        # An update retried after its engine died may find its resize under way or done.
        if server.status in (ServerStatus.RESIZE, ServerStatus.VERIFY_RESIZE):
            return {"confirmed": False}
        if server.flavor_id == flavor.id and server.status is ServerStatus.ACTIVE:
            return {"confirmed": True}
        compute.resize_server(self.physical_id, flavor)
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
        # never learned its id: find it by name, so a rollback leaves nothing behind. Once
        # the id is known, a server of the same name is another one (the replacement).
        found = None if self.data.get(_SERVER_ID) else compute.find_server(self._name())
        # An old half of a replacement shares its name with its successor, whose create
        # adopts a healthy server of that name: only a broken one can still be this one's.
        if found is not None and not (self.replaced and found.status not in _BROKEN):
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

    def needs_replace_failed(self) -> bool:
        """Keep a FAILED attachment whose volume is attached to its server: a replacement
        would find that attachment again, and deleting the old record would detach the
        database's volume."""
        server_id, volume_id = self._ids()
        try:
            volume = self.cloud.services.volume.get_volume(volume_id)
        except NotFound:
            return True
        return bool(volume.status.value != IN_USE or volume.attached_to != server_id)

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
