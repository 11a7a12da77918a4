"""The volume contract: create, grow (never shrink) and delete (never while attached)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from contract_support import Wait, active_server, available_volume, missing_id, unique

from cellar.drivers.base import InvalidRequest
from cellar.drivers.registry import Services
from cellar.drivers.volume.base import (
    InvalidVolumeSize,
    VolumeInUse,
    VolumeNotFound,
    VolumeStatus,
)


class VolumeContract:
    def test_create_volume_becomes_available(self, services: Services, wait: Wait) -> None:
        volume = available_volume(services, wait, size_gb=2)
        assert (volume.size_gb, volume.attached_to) == (2, None)
        assert volume.id in {v.id for v in services.volume.list_volumes()}
        found = services.volume.find_volume(volume.name)
        assert found is not None and found.id == volume.id

    def test_find_volume_by_unknown_name(self, services: Services) -> None:
        assert services.volume.find_volume(unique("nothing")) is None

    @pytest.mark.parametrize("operation", ["get", "extend", "delete"])
    def test_unknown_volume_is_refused(self, services: Services, operation: str) -> None:
        volumes, volume_id = services.volume, missing_id()
        calls: dict[str, Callable[[], object]] = {
            "get": lambda: volumes.get_volume(volume_id),
            "extend": lambda: volumes.extend_volume(volume_id, 5),
            "delete": lambda: volumes.delete_volume(volume_id),
        }
        with pytest.raises(VolumeNotFound) as caught:
            calls[operation]()
        assert caught.value.volume_id == volume_id

    @pytest.mark.parametrize("size_gb", [0, -1])
    def test_a_volume_needs_at_least_one_gb(self, services: Services, size_gb: int) -> None:
        name = unique("volume")
        with pytest.raises(InvalidRequest):
            services.volume.create_volume(name=name, size_gb=size_gb)
        assert services.volume.find_volume(name) is None

    def test_extend_a_volume(self, services: Services, wait: Wait) -> None:
        volume = available_volume(services, wait)
        services.volume.extend_volume(volume.id, 3)
        wait.until(
            lambda: services.volume.get_volume(volume.id),
            lambda v: (v.size_gb, v.status) == (3, VolumeStatus.AVAILABLE),
            "a 3 GB available volume",
        )

    def test_extend_an_attached_volume(self, services: Services, wait: Wait) -> None:
        server, volume = active_server(services, wait), available_volume(services, wait)
        services.compute.attach_volume(server.id, volume.id)
        wait.volume(services, volume.id, VolumeStatus.IN_USE)
        services.volume.extend_volume(volume.id, 2)
        extended = wait.until(
            lambda: services.volume.get_volume(volume.id),
            lambda v: (v.size_gb, v.status) == (2, VolumeStatus.IN_USE),
            "a 2 GB volume in use",
        )
        assert extended.attached_to == server.id

    @pytest.mark.parametrize("size_gb", [1, 2, 0])
    def test_a_volume_cannot_shrink(self, services: Services, wait: Wait, size_gb: int) -> None:
        volume = available_volume(services, wait, size_gb=2)
        with pytest.raises(InvalidVolumeSize) as caught:
            services.volume.extend_volume(volume.id, size_gb)
        assert caught.value.volume_id == volume.id
        after = services.volume.get_volume(volume.id)
        assert (after.size_gb, after.status) == (2, VolumeStatus.AVAILABLE)

    def test_delete_a_volume(self, services: Services, wait: Wait) -> None:
        volume = available_volume(services, wait)
        services.volume.delete_volume(volume.id)
        wait.until(
            lambda: services.volume.find_volume(volume.name),
            lambda found: found is None,
            f"volume {volume.id} gone",
        )
        with pytest.raises(VolumeNotFound):
            services.volume.get_volume(volume.id)

    def test_an_attached_volume_cannot_be_deleted(self, services: Services, wait: Wait) -> None:
        server, volume = active_server(services, wait), available_volume(services, wait)
        services.compute.attach_volume(server.id, volume.id)
        wait.volume(services, volume.id, VolumeStatus.IN_USE)
        with pytest.raises(VolumeInUse) as caught:
            services.volume.delete_volume(volume.id)
        assert (caught.value.volume_id, caught.value.server_id) == (volume.id, server.id)
        assert services.volume.get_volume(volume.id).attached_to == server.id
