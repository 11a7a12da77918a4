"""The local volume service: XFS volumes of the local cloud (`cellar.localcloud.volumes`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from cellar.domain.errors import CellarError
from cellar.drivers.base import InvalidRequest, ServiceUnavailable
from cellar.drivers.volume.base import (
    InvalidVolumeSize,
    Volume,
    VolumeDriver,
    VolumeError,
    VolumeInUse,
    VolumeNotFound,
    VolumeStatus,
)
from cellar.localcloud.system import LocalCloudError
from cellar.localcloud.volumes import (
    VolumeAttached,
    VolumeInfo,
    VolumeMissing,
    VolumeRefused,
    Volumes,
    VolumeTooSmall,
)

# The local cloud's volume statuses are Cinder's; the two it adds while a server mounts
# or unmounts a volume show as the status the volume had before.
VOLUME_STATE_MAP = {
    "creating": VolumeStatus.CREATING,
    "available": VolumeStatus.AVAILABLE,
    "attaching": VolumeStatus.AVAILABLE,
    "in-use": VolumeStatus.IN_USE,
    "detaching": VolumeStatus.IN_USE,
    "extending": VolumeStatus.EXTENDING,
    "deleting": VolumeStatus.DELETING,
    "error": VolumeStatus.ERROR,
}


def volume_refusal(exc: LocalCloudError) -> CellarError | None:
    """The driver error for the local cloud's refusal of a volume operation, if it is one."""
    if isinstance(exc, VolumeMissing):
        return VolumeNotFound(exc.volume_id)
    if isinstance(exc, VolumeAttached):
        return VolumeInUse(exc.volume_id, exc.server_id)
    if isinstance(exc, VolumeTooSmall):
        return InvalidVolumeSize(exc.volume_id, exc.current_gb, exc.requested_gb)
    if isinstance(exc, VolumeRefused):
        return InvalidRequest(exc.message)
    return None


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except LocalCloudError as exc:
        raise (volume_refusal(exc) or VolumeError(exc.message)) from exc
    except sqlite3.OperationalError as exc:
        raise ServiceUnavailable(f"The local cloud's state is busy: {exc}.") from exc
    except OSError as exc:
        raise VolumeError(f"The local cloud failed: {exc}.") from exc


def _to_volume(info: VolumeInfo) -> Volume:
    return Volume(
        id=info.id,
        name=info.name,
        size_gb=info.size_gb,
        status=VOLUME_STATE_MAP.get(info.status, VolumeStatus.ERROR),
        attached_to=info.attached_to,
        extra={"image": str(info.image), "mount_point": info.mount_point},
    )


class LocalVolume(VolumeDriver):
    def __init__(self, volumes: Volumes) -> None:
        self._volumes = volumes

    def list_volumes(self) -> list[Volume]:
        with _translated():
            return [_to_volume(info) for info in self._volumes.all()]

    def get_volume(self, volume_id: str) -> Volume:
        with _translated():
            return _to_volume(self._volumes.get(volume_id))

    def find_volume(self, name: str) -> Volume | None:
        with _translated():
            info = self._volumes.find(name)
        return None if info is None else _to_volume(info)

    def create_volume(self, *, name: str, size_gb: int) -> Volume:
        with _translated():
            return _to_volume(self._volumes.create(name=name, size_gb=size_gb))

    def extend_volume(self, volume_id: str, size_gb: int) -> None:
        with _translated():
            self._volumes.extend(volume_id, size_gb)

    def delete_volume(self, volume_id: str) -> None:
        with _translated():
            self._volumes.delete(volume_id)
