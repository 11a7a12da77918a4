"""The compute contract: servers, their states, and attaching volumes."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest
from contract_support import (
    IMAGE,
    LARGE,
    SMALL,
    Wait,
    active_server,
    available_volume,
    missing_id,
    unique,
    verify_resize_server,
)

from cellar.domain.status import ServerStatus
from cellar.drivers.base import InvalidRequest
from cellar.drivers.compute.base import InvalidServerState, ServerNotFound
from cellar.drivers.network.base import SecurityGroupNotFound
from cellar.drivers.registry import Services
from cellar.drivers.volume.base import VolumeInUse, VolumeNotFound, VolumeStatus


class ComputeContract:
    def test_create_server_becomes_active(self, services: Services, wait: Wait) -> None:
        group = services.network.create_security_group(name=unique("group"))
        server = active_server(services, wait, groups=(group.id,))
        assert server.flavor_id == SMALL.id
        assert server.security_group_ids == (group.id,)
        assert len(server.addresses) == 1
        ipaddress.ip_address(server.addresses[0])
        assert server.id in {s.id for s in services.compute.list_servers()}
        found = services.compute.find_server(server.name)
        assert found is not None and found.id == server.id

    def test_servers_get_distinct_addresses(self, services: Services, wait: Wait) -> None:
        first, second = active_server(services, wait), active_server(services, wait)
        assert first.id != second.id
        assert set(first.addresses).isdisjoint(second.addresses)

    def test_find_server_by_unknown_name(self, services: Services) -> None:
        assert services.compute.find_server(unique("nobody")) is None

    @pytest.mark.parametrize(
        "operation",
        ["get", "delete", "reboot", "resize", "confirm", "revert", "attach", "detach"],
    )
    def test_unknown_server_is_refused(
        self, services: Services, wait: Wait, operation: str
    ) -> None:
        compute, server_id = services.compute, missing_id()
        volume_id = available_volume(services, wait).id
        calls: dict[str, Callable[[], object]] = {
            "get": lambda: compute.get_server(server_id),
            "delete": lambda: compute.delete_server(server_id),
            "reboot": lambda: compute.reboot_server(server_id),
            "resize": lambda: compute.resize_server(server_id, LARGE),
            "confirm": lambda: compute.confirm_resize(server_id),
            "revert": lambda: compute.revert_resize(server_id),
            "attach": lambda: compute.attach_volume(server_id, volume_id),
            "detach": lambda: compute.detach_volume(server_id, volume_id),
        }
        with pytest.raises(ServerNotFound) as caught:
            calls[operation]()
        assert caught.value.server_id == server_id

    def test_unknown_security_group_is_refused(self, services: Services) -> None:
        name, group_id = unique("server"), missing_id()
        with pytest.raises(SecurityGroupNotFound) as caught:
            services.compute.create_server(
                name=name, flavor=SMALL, image=IMAGE, security_group_ids=(group_id,)
            )
        assert caught.value.group_id == group_id
        assert services.compute.find_server(name) is None

    def test_delete_server(self, services: Services, wait: Wait) -> None:
        server = active_server(services, wait)
        services.compute.delete_server(server.id)
        with pytest.raises(ServerNotFound):
            services.compute.get_server(server.id)
        assert services.compute.find_server(server.name) is None

    def test_reboot_returns_to_active(self, services: Services, wait: Wait) -> None:
        server = active_server(services, wait)
        booted = services.compute.get_server(server.id).extra["boots"]
        services.compute.reboot_server(server.id)
        rebooted = wait.server(services, server.id, ServerStatus.ACTIVE)
        assert rebooted.flavor_id == SMALL.id
        assert rebooted.extra["boots"] == booted + 1  # it really booted again

    def test_resize_then_confirm(self, services: Services, wait: Wait) -> None:
        server = verify_resize_server(services, wait)
        services.compute.confirm_resize(server.id)
        assert wait.server(services, server.id, ServerStatus.ACTIVE).flavor_id == LARGE.id

    def test_resize_then_revert(self, services: Services, wait: Wait) -> None:
        server = verify_resize_server(services, wait)
        services.compute.revert_resize(server.id)
        assert wait.server(services, server.id, ServerStatus.ACTIVE).flavor_id == SMALL.id

    def test_resize_to_the_same_flavor_is_refused(self, services: Services, wait: Wait) -> None:
        server = active_server(services, wait)
        with pytest.raises(InvalidRequest) as caught:
            services.compute.resize_server(server.id, SMALL)
        assert not isinstance(caught.value, InvalidServerState)
        after = services.compute.get_server(server.id)
        assert (after.status, after.flavor_id) == (ServerStatus.ACTIVE, SMALL.id)

    @pytest.mark.parametrize("operation", ["confirm", "revert"])
    def test_confirm_and_revert_need_a_resize(
        self, services: Services, wait: Wait, operation: str
    ) -> None:
        server = active_server(services, wait)
        finish = {
            "confirm": services.compute.confirm_resize,
            "revert": services.compute.revert_resize,
        }
        with pytest.raises(InvalidServerState) as caught:
            finish[operation](server.id)
        assert (caught.value.server_id, caught.value.state) == (server.id, ServerStatus.ACTIVE)

    @pytest.mark.parametrize("operation", ["reboot", "resize"])
    def test_reboot_and_resize_need_an_active_server(
        self, services: Services, wait: Wait, operation: str
    ) -> None:
        server = verify_resize_server(services, wait)
        with pytest.raises(InvalidServerState) as caught:
            if operation == "reboot":
                services.compute.reboot_server(server.id)
            else:
                services.compute.resize_server(server.id, SMALL)
        assert caught.value.server_id == server.id
        assert caught.value.state is ServerStatus.VERIFY_RESIZE

    def test_attach_and_detach_a_volume(self, services: Services, wait: Wait) -> None:
        server, volume = active_server(services, wait), available_volume(services, wait)
        services.compute.attach_volume(server.id, volume.id)
        attached = wait.volume(services, volume.id, VolumeStatus.IN_USE)
        assert attached.attached_to == server.id
        assert services.compute.get_server(server.id).volume_ids == (volume.id,)
        services.compute.detach_volume(server.id, volume.id)
        assert wait.volume(services, volume.id, VolumeStatus.AVAILABLE).attached_to is None
        assert services.compute.get_server(server.id).volume_ids == ()

    def test_a_volume_attached_elsewhere_is_refused(self, services: Services, wait: Wait) -> None:
        owner, other = active_server(services, wait), active_server(services, wait)
        volume = available_volume(services, wait)
        services.compute.attach_volume(owner.id, volume.id)
        wait.volume(services, volume.id, VolumeStatus.IN_USE)
        with pytest.raises(VolumeInUse) as caught:
            services.compute.attach_volume(other.id, volume.id)
        assert (caught.value.volume_id, caught.value.server_id) == (volume.id, owner.id)
        assert services.compute.get_server(other.id).volume_ids == ()

    def test_attaching_an_unknown_volume_is_refused(self, services: Services, wait: Wait) -> None:
        server, volume_id = active_server(services, wait), missing_id()
        with pytest.raises(VolumeNotFound) as caught:
            services.compute.attach_volume(server.id, volume_id)
        assert caught.value.volume_id == volume_id

    def test_detaching_a_volume_not_attached_is_refused(
        self, services: Services, wait: Wait
    ) -> None:
        server, volume = active_server(services, wait), available_volume(services, wait)
        with pytest.raises(InvalidRequest):
            services.compute.detach_volume(server.id, volume.id)

    def test_deleting_a_server_detaches_its_volumes(self, services: Services, wait: Wait) -> None:
        server, volume = active_server(services, wait), available_volume(services, wait)
        services.compute.attach_volume(server.id, volume.id)
        wait.volume(services, volume.id, VolumeStatus.IN_USE)
        services.compute.delete_server(server.id)
        assert wait.volume(services, volume.id, VolumeStatus.AVAILABLE).attached_to is None
