"""The fake backend passes every driver contract; its state is a file that outlives processes."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from contract import (
    BackupContract,
    ComputeContract,
    DNSContract,
    GuestContract,
    NetworkContract,
    VolumeContract,
)
from contract_support import IMAGE, SMALL, instance_spec

from cellar.config import Settings
from cellar.domain.status import ServerStatus, ServiceStatus
from cellar.drivers import registry
from cellar.drivers.backup.base import BackupDriver
from cellar.drivers.base import ServiceUnavailable
from cellar.drivers.compute.base import ComputeDriver
from cellar.drivers.dns.base import DNSDriver
from cellar.drivers.fake import FakeCloud, build_services, fake_services
from cellar.drivers.guest.base import GuestDriver
from cellar.drivers.network.base import NetworkDriver
from cellar.drivers.registry import Services
from cellar.drivers.volume.base import VolumeDriver, VolumeStatus


@pytest.fixture
def services(fake_cloud: FakeCloud) -> Services:
    return fake_services(fake_cloud)


class TestFakeCompute(ComputeContract):
    pass


class TestFakeVolume(VolumeContract):
    pass


class TestFakeNetwork(NetworkContract):
    pass


class TestFakeDNS(DNSContract):
    pass


class TestFakeGuest(GuestContract):
    pass


class TestFakeBackup(BackupContract):
    pass


def test_the_registry_builds_the_fake_backend(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state", backend="fake")
    built = registry.build_services(settings)
    assert isinstance(built.compute, ComputeDriver) and isinstance(built.volume, VolumeDriver)
    assert isinstance(built.network, NetworkDriver) and isinstance(built.dns, DNSDriver)
    assert isinstance(built.guest, GuestDriver) and isinstance(built.backup, BackupDriver)
    group = built.network.create_security_group(name="shared")
    assert settings.fake_cloud_path.exists()
    assert build_services(settings).network.get_security_group(group.id).name == "shared"


def test_addresses_come_from_the_fake_network(services: Services) -> None:
    network = ipaddress.ip_network("10.99.0.0/16")
    for index in range(3):
        server = services.compute.create_server(name=f"s{index}", flavor=SMALL, image=IMAGE)
        assert ipaddress.ip_address(server.addresses[0]) in network


def test_concurrent_creates_from_many_threads(services: Services) -> None:
    created: list[str] = []

    def create(thread: int) -> None:
        for index in range(25):
            server = services.compute.create_server(
                name=f"t{thread}-{index}", flavor=SMALL, image=IMAGE
            )
            created.append(server.addresses[0])

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    servers = services.compute.list_servers()
    assert len(servers) == len(created) == 200
    assert len({s.id for s in servers}) == len(set(created)) == 200


def test_state_survives_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cloud.sqlite"
    first = fake_services(FakeCloud(path))
    group = first.network.create_security_group(name="g")
    rule = first.network.create_security_group_rule(
        group_id=group.id, protocol="tcp", from_port=3306, to_port=3306, cidr="0.0.0.0/0"
    )
    server = first.compute.create_server(
        name="s", flavor=SMALL, image=IMAGE, security_group_ids=(group.id,)
    )
    volume = first.volume.create_volume(name="v", size_gb=1)
    first.compute.attach_volume(server.id, volume.id)
    record = first.dns.create_record(name="s.cellar.internal", rtype="A", data=server.addresses[0])
    first.guest.prepare("i-1", server_id=server.id, spec=instance_spec("i-1"))

    again = fake_services(FakeCloud(path))
    assert again.compute.get_server(server.id) == first.compute.get_server(server.id)
    assert again.volume.get_volume(volume.id).attached_to == server.id
    assert again.network.get_security_group(group.id).rules == (rule,)
    assert again.dns.get_record(record.id) == record
    assert again.guest.status("i-1").service is ServiceStatus.RUNNING


_CHILD = """
import os, signal, sys
from cellar.domain.specs import FlavorSpec
from cellar.drivers.fake import FakeCloud, fake_services
cloud = FakeCloud(sys.argv[1])
server = fake_services(cloud).compute.create_server(
    name="child", flavor=FlavorSpec("f", "f", 512, 1), image="i"
)
cloud.inject_fault("compute.get_server", transient=True)
print(server.id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_process_leaves_its_state_and_faults(fake_cloud: FakeCloud) -> None:
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(fake_cloud.path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    server_id = child.stdout.strip()
    compute = fake_services(fake_cloud).compute
    with pytest.raises(ServiceUnavailable):
        compute.get_server(server_id)
    assert compute.get_server(server_id).status is ServerStatus.ACTIVE


def test_deleting_a_server_frees_its_volume_for_another(services: Services) -> None:
    first = services.compute.create_server(name="a", flavor=SMALL, image=IMAGE)
    second = services.compute.create_server(name="b", flavor=SMALL, image=IMAGE)
    volume = services.volume.create_volume(name="v", size_gb=1)
    services.compute.attach_volume(first.id, volume.id)
    services.compute.delete_server(first.id)
    services.compute.attach_volume(second.id, volume.id)
    assert services.volume.get_volume(volume.id).status is VolumeStatus.IN_USE
    assert services.compute.get_server(second.id).volume_ids == (volume.id,)
