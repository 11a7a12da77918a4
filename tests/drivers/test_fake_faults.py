"""Fault injection in the fake cloud: which call fails, how, and that it changes nothing."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest
from contract_support import IMAGE, LARGE, SMALL, instance_spec

from cellar.domain.errors import TransientError
from cellar.domain.status import ServerStatus
from cellar.drivers.base import DriverError, ServiceUnavailable
from cellar.drivers.compute.base import ServerError, ServerNotFound
from cellar.drivers.fake import FakeCloud, fake_services
from cellar.drivers.guest.base import GuestError
from cellar.drivers.registry import Services
from cellar.drivers.volume.base import VolumeError, VolumeStatus


@pytest.fixture
def services(fake_cloud: FakeCloud) -> Services:
    return fake_services(fake_cloud)


def test_the_nth_call_from_the_injection_fails(fake_cloud: FakeCloud, services: Services) -> None:
    services.dns.list_records()
    fake_cloud.inject_fault("dns.list_records", nth=3)
    services.dns.list_records()
    services.dns.list_records()
    with pytest.raises(DriverError, match=r"dns\.list_records"):
        services.dns.list_records()
    assert services.dns.list_records() == []


def test_a_transient_fault_can_be_retried(fake_cloud: FakeCloud, services: Services) -> None:
    fake_cloud.inject_fault("volume.create_volume", transient=True)
    with pytest.raises(ServiceUnavailable) as caught:
        services.volume.create_volume(name="v", size_gb=1)
    assert isinstance(caught.value, TransientError)
    assert services.volume.list_volumes() == []
    assert services.volume.create_volume(name="v", size_gb=1).name == "v"


@pytest.mark.parametrize(
    ("operation", "error"),
    [
        ("compute.list_servers", ServerError),
        ("volume.list_volumes", VolumeError),
        ("network.list_security_groups", DriverError),
        ("dns.list_records", DriverError),
        ("guest.status", GuestError),
    ],
)
def test_a_permanent_fault_raises_the_services_error(
    fake_cloud: FakeCloud, services: Services, operation: str, error: type[DriverError]
) -> None:
    calls: dict[str, Callable[[], object]] = {
        "compute": services.compute.list_servers,
        "volume": services.volume.list_volumes,
        "network": services.network.list_security_groups,
        "dns": services.dns.list_records,
        "guest": lambda: services.guest.status("i-1"),
    }
    fake_cloud.inject_fault(operation)
    with pytest.raises(error) as caught:
        calls[operation.split(".")[0]]()
    assert not isinstance(caught.value, TransientError)


def test_a_failed_call_changes_nothing(fake_cloud: FakeCloud, services: Services) -> None:
    server = services.compute.create_server(name="s", flavor=SMALL, image=IMAGE)
    volume = services.volume.create_volume(name="v", size_gb=1)
    for operation in ("volume.extend_volume", "compute.resize_server", "compute.attach_volume"):
        fake_cloud.inject_fault(operation)
    with pytest.raises(VolumeError):
        services.volume.extend_volume(volume.id, 5)
    with pytest.raises(ServerError):
        services.compute.resize_server(server.id, LARGE)
    with pytest.raises(ServerError):
        services.compute.attach_volume(server.id, volume.id)
    after = services.volume.get_volume(volume.id)
    assert (after.size_gb, after.status) == (1, VolumeStatus.AVAILABLE)
    assert services.compute.get_server(server.id) == server


def test_a_failed_create_server_leaves_an_error_server(
    fake_cloud: FakeCloud, services: Services
) -> None:
    group = services.network.create_security_group(name="g")
    fake_cloud.inject_fault("compute.create_server")
    with pytest.raises(ServerError):
        services.compute.create_server(
            name="s", flavor=SMALL, image=IMAGE, security_group_ids=(group.id,)
        )
    failed = services.compute.find_server("s")
    assert failed is not None and failed.status is ServerStatus.ERROR
    assert (failed.addresses, failed.security_group_ids) == ((), ())
    services.network.delete_security_group(group.id)
    services.compute.delete_server(failed.id)
    assert services.compute.list_servers() == []


def test_a_transient_create_server_fault_leaves_nothing(
    fake_cloud: FakeCloud, services: Services
) -> None:
    fake_cloud.inject_fault("compute.create_server", transient=True)
    with pytest.raises(ServiceUnavailable):
        services.compute.create_server(name="s", flavor=SMALL, image=IMAGE)
    assert services.compute.list_servers() == []


def test_another_process_sees_injected_faults(fake_cloud: FakeCloud) -> None:
    other = FakeCloud(fake_cloud.path)
    other.inject_fault("guest.prepare", transient=True)
    server = fake_services(other).compute.create_server(name="s", flavor=SMALL, image=IMAGE)
    with pytest.raises(ServiceUnavailable):
        fake_services(fake_cloud).guest.prepare(
            "i-1", server_id=server.id, spec=instance_spec("i-1")
        )
    assert other.call_count("guest.prepare") == 1
    other.close()


def test_clear_faults(fake_cloud: FakeCloud, services: Services) -> None:
    fake_cloud.inject_fault("dns.list_records")
    fake_cloud.inject_fault("dns.list_records", nth=2, transient=True)
    fake_cloud.clear_faults()
    assert services.dns.list_records() == services.dns.list_records() == []


def test_call_count_counts_every_call(fake_cloud: FakeCloud, services: Services) -> None:
    assert fake_cloud.call_count("compute.get_server") == 0
    fake_cloud.inject_fault("compute.get_server", nth=2)
    with pytest.raises(ServerNotFound):
        services.compute.get_server("no-such-server")
    with pytest.raises(ServerError):
        services.compute.get_server("no-such-server")
    with pytest.raises(ServerNotFound):
        services.compute.get_server("no-such-server")
    assert fake_cloud.call_count("compute.get_server") == 3
    assert fake_cloud.call_count("compute.list_servers") == 0


def test_every_driver_method_can_be_faulted(services: Services) -> None:
    drivers = vars(services)
    public = {
        f"{service}.{name}"
        for service, driver in drivers.items()
        for name, _ in inspect.getmembers(type(driver), inspect.isfunction)
        if not name.startswith("_")
    }
    assert public == set(FakeCloud.operations())


@pytest.mark.parametrize(("operation", "nth"), [("compute.explode", 1), ("dns.list_records", 0)])
def test_an_impossible_fault_is_refused(fake_cloud: FakeCloud, operation: str, nth: int) -> None:
    with pytest.raises(ValueError):
        fake_cloud.inject_fault(operation, nth=nth)
