"""The volume service: block volumes (Cinder's role)."""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cellar.drivers.base import DriverError, InvalidRequest, ResourceNotFound


class VolumeStatus(enum.Enum):
    CREATING = "creating"
    AVAILABLE = "available"
    IN_USE = "in-use"
    EXTENDING = "extending"
    DELETING = "deleting"
    ERROR = "error"


class VolumeNotFound(ResourceNotFound):
    def __init__(self, volume_id: str) -> None:
        super().__init__("Volume", volume_id)
        self.volume_id = volume_id


class VolumeError(DriverError):
    """A volume operation failed for good."""


class VolumeInUse(InvalidRequest):
    def __init__(self, volume_id: str, server_id: str) -> None:
        super().__init__(f"Volume {volume_id} is attached to server {server_id}.")
        self.volume_id = volume_id
        self.server_id = server_id


class InvalidVolumeSize(InvalidRequest):
    def __init__(self, volume_id: str, current_gb: int, requested_gb: int) -> None:
        super().__init__(
            f"Volume {volume_id} is {current_gb} GB: it can only grow, not become "
            f"{requested_gb} GB."
        )
        self.volume_id = volume_id


@dataclass(frozen=True)
class Volume:
    id: str
    name: str
    size_gb: int
    status: VolumeStatus
    attached_to: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


class VolumeDriver(abc.ABC):
    name: str = "volume"

    @abc.abstractmethod
    def list_volumes(self) -> list[Volume]: ...

    @abc.abstractmethod
    def get_volume(self, volume_id: str) -> Volume:
        """The volume, or `VolumeNotFound`."""

    def find_volume(self, name: str) -> Volume | None:
        matches = [v for v in self.list_volumes() if v.name == name]
        return matches[0] if matches else None

    @abc.abstractmethod
    def create_volume(self, *, name: str, size_gb: int) -> Volume:
        """Start creating a volume: `creating`, then `available`."""

    @abc.abstractmethod
    def extend_volume(self, volume_id: str, size_gb: int) -> None:
        """Grow a volume (attached or not); shrinking raises `InvalidVolumeSize`."""

    @abc.abstractmethod
    def delete_volume(self, volume_id: str) -> None:
        """Delete a volume; an attached one raises `VolumeInUse`."""
