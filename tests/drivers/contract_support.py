"""What the driver contracts share: polling for a state, names, flavors and builders.

Only the driver bases' API is used here, never a backend's own.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import pytest

from cellar.domain.specs import FlavorSpec, InstanceSpec
from cellar.domain.status import ServerStatus, ServiceStatus
from cellar.drivers.compute.base import Server
from cellar.drivers.registry import Services
from cellar.drivers.volume.base import (
    Volume,
    VolumeStatus,
)

T = TypeVar("T")

SMALL = FlavorSpec(id="contract-small", name="small", ram_mb=512, vcpus=1)
LARGE = FlavorSpec(id="contract-large", name="large", ram_mb=1024, vcpus=2)
IMAGE = "contract-image"


@dataclass(frozen=True)
class Wait:
    """Poll `probe` until `done` holds, or fail the test after `timeout_s`."""

    timeout_s: float
    interval_s: float = 0.01

    def until(self, probe: Callable[[], T], done: Callable[[T], bool], what: str) -> T:
        deadline = time.monotonic() + self.timeout_s
        while True:
            value = probe()
            if done(value):
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} after {self.timeout_s} s; last seen: {value!r}")
            time.sleep(self.interval_s)

    def server(self, services: Services, server_id: str, status: ServerStatus) -> Server:
        return self.until(
            lambda: services.compute.get_server(server_id),
            lambda s: s.status is status,
            f"server {server_id} {status.value}",
        )

    def volume(self, services: Services, volume_id: str, status: VolumeStatus) -> Volume:
        return self.until(
            lambda: services.volume.get_volume(volume_id),
            lambda v: v.status is status,
            f"volume {volume_id} {status.value}",
        )

    def service(self, services: Services, instance_id: str, status: ServiceStatus) -> None:
        self.until(
            lambda: services.guest.status(instance_id).service,
            lambda s: s is status,
            f"guest of {instance_id} {status.value}",
        )


def unique(prefix: str) -> str:
    """A name no other test uses (a real backend may be shared)."""
    return f"contract-{prefix}-{uuid.uuid4().hex[:10]}"


def missing_id() -> str:
    return str(uuid.uuid4())


def active_server(services: Services, wait: Wait, *, groups: tuple[str, ...] = ()) -> Server:
    created = services.compute.create_server(
        name=unique("server"), flavor=SMALL, image=IMAGE, security_group_ids=groups
    )
    return wait.server(services, created.id, ServerStatus.ACTIVE)


def available_volume(services: Services, wait: Wait, size_gb: int = 1) -> Volume:
    created = services.volume.create_volume(name=unique("volume"), size_gb=size_gb)
    return wait.volume(services, created.id, VolumeStatus.AVAILABLE)


def verify_resize_server(services: Services, wait: Wait) -> Server:
    server = active_server(services, wait)
    services.compute.resize_server(server.id, LARGE)
    return wait.server(services, server.id, ServerStatus.VERIFY_RESIZE)


def instance_spec(instance_id: str) -> InstanceSpec:
    return InstanceSpec(
        instance_id=instance_id,
        name=unique("instance"),
        project_id="contract-project",
        flavor=SMALL,
        volume_size_gb=1,
        datastore="mysql",
        datastore_version="8.0",
        image=IMAGE,
        ports=(3306,),
    )
