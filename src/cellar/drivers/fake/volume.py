"""The fake volume service: volumes that take `latency_s` to create and to extend.

A volume is `available` or `in-use` according to its `attached_to` (set by the compute
service); `creating` and `extending` are `pending` statuses that last until `until`.
"""

from __future__ import annotations

import uuid
from contextlib import AbstractContextManager

from cellar.drivers.base import InvalidRequest
from cellar.drivers.fake.cloud import FakeCloud
from cellar.drivers.fake.store import VOLUME, Row, Tx, pending, settle_in
from cellar.drivers.volume.base import (
    InvalidVolumeSize,
    Volume,
    VolumeDriver,
    VolumeInUse,
    VolumeNotFound,
    VolumeStatus,
)

_SETTLED = frozenset({VolumeStatus.AVAILABLE, VolumeStatus.IN_USE})


def volume_status(row: Row, now: float) -> VolumeStatus:
    status = pending(row.data, now)
    if status is not None:
        return VolumeStatus(status)
    return VolumeStatus.IN_USE if "attached_to" in row.data else VolumeStatus.AVAILABLE


def require_volume(tx: Tx, volume_id: str) -> Row:
    row = tx.get(VOLUME, volume_id)
    if row is None:
        raise VolumeNotFound(volume_id)
    return row


def _to_volume(row: Row, now: float) -> Volume:
    status = volume_status(row, now)
    # Like Cinder, a volume shows its old size until an extend is done.
    size = row.data.get("old_size_gb") if status is VolumeStatus.EXTENDING else None
    return Volume(
        id=row.id,
        name=row.name,
        size_gb=int(size or row.data["size_gb"]),
        status=status,
        attached_to=row.data.get("attached_to"),
    )


class FakeVolume(VolumeDriver):
    def __init__(self, cloud: FakeCloud) -> None:
        self._cloud = cloud

    def _call(self, method: str) -> AbstractContextManager[Tx]:
        return self._cloud.call(f"volume.{method}")

    def list_volumes(self) -> list[Volume]:
        with self._call("list_volumes") as tx:
            return [_to_volume(row, tx.now) for row in tx.all(VOLUME)]

    def get_volume(self, volume_id: str) -> Volume:
        with self._call("get_volume") as tx:
            return _to_volume(require_volume(tx, volume_id), tx.now)

    def find_volume(self, name: str) -> Volume | None:
        with self._call("find_volume") as tx:
            rows = tx.by_name(VOLUME, name)
            return _to_volume(rows[0], tx.now) if rows else None

    def create_volume(self, *, name: str, size_gb: int) -> Volume:
        with self._call("create_volume") as tx:
            if size_gb < 1:
                raise InvalidRequest(f"A volume needs at least 1 GB, not {size_gb} GB.")
            changes = settle_in("creating", tx.now, self._cloud.latency_s)
            row = Row(str(uuid.uuid4()), VOLUME, name, None, {"size_gb": size_gb, **changes})
            return _to_volume(tx.insert(row), tx.now)

    def extend_volume(self, volume_id: str, size_gb: int) -> None:
        with self._call("extend_volume") as tx:
            row = require_volume(tx, volume_id)
            self._require_settled(row, tx.now, "extend")
            current = int(row.data["size_gb"])
            if size_gb <= current:
                raise InvalidVolumeSize(volume_id, current, size_gb)
            changes = settle_in("extending", tx.now, self._cloud.latency_s)
            tx.update(row.changed(size_gb=size_gb, old_size_gb=current, **changes))

    def delete_volume(self, volume_id: str) -> None:
        with self._call("delete_volume") as tx:
            row = require_volume(tx, volume_id)
            attached_to = row.data.get("attached_to")
            if attached_to is not None:
                raise VolumeInUse(volume_id, attached_to)
            self._require_settled(row, tx.now, "delete")
            tx.delete(volume_id)

    def _require_settled(self, row: Row, now: float, operation: str) -> None:
        """Cinder refuses to extend or delete a volume that is still creating or extending."""
        status = volume_status(row, now)
        if status not in _SETTLED:
            raise InvalidRequest(f"Volume {row.id} is {status.value}: cannot {operation} it.")
