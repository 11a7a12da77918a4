"""Latency in the fake cloud: every call takes `latency_s`, and so does every change of state.

Each call sleeping the latency, a caller of the slow cloud would only see a state settled;
a second, latency-free view of the same file (`fast`) watches the transitional states.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from contract import Wait
from contract_support import IMAGE, LARGE, SMALL, instance_spec

from cellar.domain.status import ServerStatus, ServiceStatus
from cellar.drivers.base import InvalidRequest
from cellar.drivers.compute.base import InvalidServerState
from cellar.drivers.fake import FakeCloud, fake_services
from cellar.drivers.registry import Services
from cellar.drivers.volume.base import VolumeStatus

LATENCY_S = 0.2


@pytest.fixture
def fast(fake_cloud: FakeCloud) -> Services:
    return fake_services(fake_cloud)


@pytest.fixture
def slow(fake_cloud: FakeCloud) -> Iterator[Services]:
    cloud = FakeCloud(fake_cloud.path, latency_s=LATENCY_S)
    yield fake_services(cloud)
    cloud.close()


def test_each_call_takes_the_latency(slow: Services) -> None:
    started = time.monotonic()
    slow.dns.list_records()
    assert time.monotonic() - started >= LATENCY_S


def test_a_server_builds_for_the_latency(fast: Services, slow: Services, wait: Wait) -> None:
    created = slow.compute.create_server(name="s", flavor=SMALL, image=IMAGE)
    created_at = time.monotonic()
    assert created.status is ServerStatus.BUILD
    assert fast.compute.get_server(created.id).status is ServerStatus.BUILD
    with pytest.raises(InvalidServerState) as caught:
        fast.compute.reboot_server(created.id)
    assert caught.value.state is ServerStatus.BUILD
    wait.server(fast, created.id, ServerStatus.ACTIVE)
    assert time.monotonic() - created_at >= LATENCY_S * 0.9


def test_a_volume_is_creating_for_the_latency(fast: Services, slow: Services, wait: Wait) -> None:
    server = fast.compute.create_server(name="s", flavor=SMALL, image=IMAGE)
    volume = slow.volume.create_volume(name="v", size_gb=1)
    assert volume.status is VolumeStatus.CREATING
    with pytest.raises(InvalidRequest):
        fast.compute.attach_volume(server.id, volume.id)
    with pytest.raises(InvalidRequest):
        fast.volume.delete_volume(volume.id)
    wait.volume(fast, volume.id, VolumeStatus.AVAILABLE)


def test_extending_returns_to_the_previous_status(
    fast: Services, slow: Services, wait: Wait
) -> None:
    server = fast.compute.create_server(name="s", flavor=SMALL, image=IMAGE)
    volume = fast.volume.create_volume(name="v", size_gb=1)
    fast.compute.attach_volume(server.id, volume.id)
    slow.volume.extend_volume(volume.id, 2)
    extending = fast.volume.get_volume(volume.id)
    assert (extending.status, extending.size_gb) == (VolumeStatus.EXTENDING, 1)
    with pytest.raises(InvalidRequest):
        fast.volume.extend_volume(volume.id, 3)
    assert wait.volume(fast, volume.id, VolumeStatus.IN_USE).size_gb == 2


def test_a_reboot_stops_the_datastore_until_the_server_is_up(
    fast: Services, slow: Services, wait: Wait
) -> None:
    server = fast.compute.create_server(name="s", flavor=SMALL, image=IMAGE)
    fast.guest.prepare("i-1", server_id=server.id, spec=instance_spec("i-1"))
    slow.compute.reboot_server(server.id)
    assert fast.compute.get_server(server.id).status is ServerStatus.REBOOT
    assert fast.guest.status("i-1").service is ServiceStatus.SHUTDOWN
    wait.server(fast, server.id, ServerStatus.ACTIVE)
    assert fast.guest.status("i-1").service is ServiceStatus.RUNNING


def test_a_resize_waits_for_verification(fast: Services, slow: Services, wait: Wait) -> None:
    server = fast.compute.create_server(name="s", flavor=SMALL, image=IMAGE)
    slow.compute.resize_server(server.id, LARGE)
    assert fast.compute.get_server(server.id).status is ServerStatus.RESIZE
    with pytest.raises(InvalidServerState):
        fast.compute.confirm_resize(server.id)
    wait.server(fast, server.id, ServerStatus.VERIFY_RESIZE)
    fast.compute.confirm_resize(server.id)
    confirmed = fast.compute.get_server(server.id)
    assert (confirmed.status, confirmed.flavor_id) == (ServerStatus.ACTIVE, LARGE.id)


def test_the_datastore_takes_the_latency_to_start(
    fast: Services, slow: Services, wait: Wait
) -> None:
    server = fast.compute.create_server(name="s", flavor=SMALL, image=IMAGE)
    slow.guest.prepare("i-1", server_id=server.id, spec=instance_spec("i-1"))
    assert fast.guest.status("i-1").service is ServiceStatus.BUILDING
    wait.service(fast, "i-1", ServiceStatus.RUNNING)
    slow.guest.restart("i-1")
    assert fast.guest.status("i-1").service is ServiceStatus.SHUTDOWN
    wait.service(fast, "i-1", ServiceStatus.RUNNING)
