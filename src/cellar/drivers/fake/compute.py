"""The fake compute service: servers that build, reboot and resize in `latency_s`.

A server's data holds its settled `status` and, while a change lasts, the `pending`
status until `until`; `boot_at` is when the server last came up (the guest reads it),
`boots` how many times it booted (shown in `extra`: a test sees that a reboot happened).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import asdict

from cellar.domain.specs import FlavorSpec
from cellar.domain.status import ServerStatus
from cellar.drivers.base import DriverError, InvalidRequest
from cellar.drivers.compute.base import ComputeDriver, InvalidServerState, Server, ServerNotFound
from cellar.drivers.fake.cloud import FakeCloud, OnFault
from cellar.drivers.fake.network import require_group
from cellar.drivers.fake.store import SERVER, VOLUME, Row, Tx, pending, settle_in
from cellar.drivers.fake.volume import require_volume, volume_status
from cellar.drivers.volume.base import VolumeInUse, VolumeStatus

# Nova lets volumes be attached and detached in these states only.
_ATTACHABLE = frozenset({ServerStatus.ACTIVE, ServerStatus.SHUTOFF, ServerStatus.VERIFY_RESIZE})
_EXTRA_KEYS = ("image", "metadata", "flavor", "fault", "boots")


def server_status(row: Row, now: float) -> ServerStatus:
    return ServerStatus(pending(row.data, now) or row.data["status"])


def _boots(row: Row) -> int:
    return int(row.data.get("boots", 1))


def require_server(tx: Tx, server_id: str) -> Row:
    row = tx.get(SERVER, server_id)
    if row is None:
        raise ServerNotFound(server_id)
    return row


def _to_server(row: Row, now: float) -> Server:
    data = row.data
    return Server(
        id=row.id,
        name=row.name,
        status=server_status(row, now),
        flavor_id=str(data["flavor"]["id"]),
        addresses=tuple(data["addresses"]),
        volume_ids=tuple(data["volume_ids"]),
        security_group_ids=tuple(data["security_group_ids"]),
        extra={key: data[key] for key in _EXTRA_KEYS if key in data},
    )


class FakeCompute(ComputeDriver):
    def __init__(self, cloud: FakeCloud) -> None:
        self._cloud = cloud

    def _call(self, method: str, on_fault: OnFault | None = None) -> AbstractContextManager[Tx]:
        return self._cloud.call(f"compute.{method}", on_fault)

    def _require_state(self, row: Row, now: float, allowed: ServerStatus, operation: str) -> None:
        state = server_status(row, now)
        if state is not allowed:
            raise InvalidServerState(row.id, state, operation)

    def list_servers(self) -> list[Server]:
        with self._call("list_servers") as tx:
            return [_to_server(row, tx.now) for row in tx.all(SERVER)]

    def get_server(self, server_id: str) -> Server:
        with self._call("get_server") as tx:
            return _to_server(require_server(tx, server_id), tx.now)

    def find_server(self, name: str) -> Server | None:
        with self._call("find_server") as tx:
            rows = tx.by_name(SERVER, name)
            return _to_server(rows[0], tx.now) if rows else None

    def create_server(
        self,
        *,
        name: str,
        flavor: FlavorSpec,
        image: str,
        security_group_ids: tuple[str, ...] = (),
        user_data: Mapping[str, str] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Server:
        data = {
            "flavor": asdict(flavor),
            "image": image,
            "metadata": dict(metadata or {}),
            "user_data": dict(user_data or {}),
            "volume_ids": [],
            "boots": 1,
        }

        def left_in_error(tx: Tx, error: DriverError) -> None:
            tx.insert(
                Row(str(uuid.uuid4()), SERVER, name, None, {**data, "status": "ERROR"}).changed(
                    addresses=[], security_group_ids=[], fault=error.message
                )
            )

        with self._call("create_server", on_fault=left_in_error) as tx:
            for group_id in security_group_ids:
                require_group(tx, group_id)
            server_id = str(uuid.uuid4())
            tx.link_groups(server_id, security_group_ids)
            row = Row(server_id, SERVER, name, None, data).changed(
                status="ACTIVE",
                addresses=[tx.allocate_address(server_id)],
                security_group_ids=list(security_group_ids),
                **settle_in("BUILD", tx.now, self._cloud.latency_s),
            )
            return _to_server(tx.insert(row), tx.now)

    def delete_server(self, server_id: str) -> None:
        with self._call("delete_server") as tx:
            require_server(tx, server_id)
            for volume in tx.children(VOLUME, server_id):
                tx.update(volume.changed(attached_to=None).moved(None))
            tx.forget_server(server_id)
            tx.delete(server_id)

    def reboot_server(self, server_id: str) -> None:
        with self._call("reboot_server") as tx:
            row = require_server(tx, server_id)
            self._require_state(row, tx.now, ServerStatus.ACTIVE, "reboot")
            changes = settle_in("REBOOT", tx.now, self._cloud.latency_s)
            tx.update(row.changed(boot_at=changes["until"], boots=_boots(row) + 1, **changes))

    def resize_server(self, server_id: str, flavor: FlavorSpec) -> None:
        with self._call("resize_server") as tx:
            row = require_server(tx, server_id)
            self._require_state(row, tx.now, ServerStatus.ACTIVE, "resize")
            if flavor.id == row.data["flavor"]["id"]:
                raise InvalidRequest(f"Server {server_id} already has flavor {flavor.id}.")
            changes = settle_in("RESIZE", tx.now, self._cloud.latency_s)
            tx.update(
                row.changed(
                    status="VERIFY_RESIZE",
                    flavor=asdict(flavor),
                    old_flavor=row.data["flavor"],
                    boot_at=changes["until"],
                    boots=_boots(row) + 1,
                    **changes,
                )
            )

    def confirm_resize(self, server_id: str) -> None:
        with self._call("confirm_resize") as tx:
            row = require_server(tx, server_id)
            self._require_state(row, tx.now, ServerStatus.VERIFY_RESIZE, "confirm a resize")
            tx.update(row.changed(status="ACTIVE", old_flavor=None, pending=None, until=None))

    def revert_resize(self, server_id: str) -> None:
        with self._call("revert_resize") as tx:
            row = require_server(tx, server_id)
            self._require_state(row, tx.now, ServerStatus.VERIFY_RESIZE, "revert a resize")
            tx.update(
                row.changed(
                    status="ACTIVE",
                    flavor=row.data["old_flavor"],
                    old_flavor=None,
                    boot_at=tx.now,
                    boots=_boots(row) + 1,
                    pending=None,
                    until=None,
                )
            )

    def attach_volume(self, server_id: str, volume_id: str) -> None:
        with self._call("attach_volume") as tx:
            server = self._attachable(tx, server_id, "attach a volume")
            volume = require_volume(tx, volume_id)
            attached_to = volume.data.get("attached_to")
            if attached_to is not None:
                raise VolumeInUse(volume_id, attached_to)
            status = volume_status(volume, tx.now)
            if status is not VolumeStatus.AVAILABLE:
                raise InvalidRequest(f"Volume {volume_id} is {status.value}: cannot attach it.")
            tx.update(volume.changed(attached_to=server_id).moved(server_id))
            tx.update(server.changed(volume_ids=[*server.data["volume_ids"], volume_id]))

    def detach_volume(self, server_id: str, volume_id: str) -> None:
        with self._call("detach_volume") as tx:
            server = self._attachable(tx, server_id, "detach a volume")
            volume = require_volume(tx, volume_id)
            if volume.data.get("attached_to") != server_id:
                raise InvalidRequest(f"Volume {volume_id} is not attached to server {server_id}.")
            status = volume_status(volume, tx.now)
            if status is not VolumeStatus.IN_USE:
                raise InvalidRequest(f"Volume {volume_id} is {status.value}: cannot detach it.")
            tx.update(volume.changed(attached_to=None).moved(None))
            volume_ids = [v for v in server.data["volume_ids"] if v != volume_id]
            tx.update(server.changed(volume_ids=volume_ids))

    def _attachable(self, tx: Tx, server_id: str, operation: str) -> Row:
        row = require_server(tx, server_id)
        state = server_status(row, tx.now)
        if state not in _ATTACHABLE:
            raise InvalidServerState(server_id, state, operation)
        return row
