"""The local backend's compute, volume and network drivers pass the driver contracts on a
real local cloud (namespaces, cgroups, loop devices, nftables): root only.

Each test gets its own cloud: a bridge and a network of its own (never `cellar serve`'s),
torn down afterwards, and nothing of it may be left. A stand-in (`sleep`) plays the guest
agent; DNS and guest come from the fake backend here (they have their own suites).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from contract import ComputeContract, NetworkContract, VolumeContract, Wait
from contract_support import IMAGE, SMALL, unique

from cellar.config import Settings
from cellar.domain.status import ServerStatus
from cellar.drivers import registry
from cellar.drivers.compute.base import ServerError
from cellar.drivers.fake import FakeCloud, fake_services
from cellar.drivers.local import LocalCompute, LocalNetwork, LocalVolume, local_drivers
from cellar.drivers.local.dns import LocalDNSDriver
from cellar.drivers.local.guest import LocalGuestDriver
from cellar.drivers.registry import Services
from cellar.drivers.volume.base import VolumeStatus
from cellar.localcloud.cleanup import infrastructure, leftovers, teardown
from cellar.localcloud.network import namespace_exists
from cellar.localcloud.system import LocalCloudError

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="the local cloud needs root (network namespaces, loop devices, mounts, cgroups)",
)


def stand_in_agent(config_dir: Path) -> list[str]:
    return ["sleep", "1000"]


def cloud_settings(tmp_path: Path) -> Settings:
    """A cloud of its own: a fresh bridge name and network (not 10.251.0.0/24)."""
    return Settings(
        state_dir=tmp_path / "state",
        local_bridge=f"ct{secrets.token_hex(3)}",
        local_cidr=f"10.252.{secrets.randbelow(256)}.0/24",
    )


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    settings = cloud_settings(tmp_path)
    try:
        yield settings
    finally:
        teardown(settings)
    assert leftovers(settings) == [] and infrastructure(settings) == []


@pytest.fixture
def services(settings: Settings, fake_cloud: FakeCloud) -> Services:
    compute, volume, network = local_drivers(settings, agent_command=stand_in_agent)
    fake = fake_services(fake_cloud)
    return Services(compute=compute, volume=volume, network=network, dns=fake.dns, guest=fake.guest)


class TestLocalCompute(ComputeContract):
    pass


class TestLocalVolume(VolumeContract):
    pass


class TestLocalNetwork(NetworkContract):
    pass


def test_servers_get_addresses_of_the_cloud_network(settings: Settings, services: Services) -> None:
    server = services.compute.create_server(name=unique("server"), flavor=SMALL, image=IMAGE)
    assert server.status is ServerStatus.ACTIVE
    network = ipaddress.ip_network(settings.local_cidr)
    assert ipaddress.ip_address(server.addresses[0]) in network
    assert server.addresses[0] != str(next(network.hosts()))  # the bridge's


def test_a_failed_create_leaves_an_error_server_and_nothing_else(
    settings: Settings, services: Services
) -> None:
    def broken_agent(config_dir: Path) -> list[str]:
        raise LocalCloudError("no agent today")  # the last step of a build fails

    compute, _, network = local_drivers(settings, agent_command=broken_agent)
    group = network.create_security_group(name=unique("group"))
    with pytest.raises(ServerError, match="no agent today"):
        compute.create_server(
            name="broken", flavor=SMALL, image=IMAGE, security_group_ids=(group.id,)
        )
    failed = compute.find_server("broken")
    assert failed is not None and failed.status is ServerStatus.ERROR
    assert (failed.addresses, failed.security_group_ids) == ((), ())
    assert "no agent today" in failed.extra["fault"]
    assert not namespace_exists(failed.extra["netns"])
    assert leftovers(settings) == []
    network.delete_security_group(group.id)
    compute.delete_server(failed.id)
    assert compute.list_servers() == []


def test_concurrent_builds_attaches_and_deletes(settings: Settings, services: Services) -> None:
    """As the task manager's workers do: several threads on one set of drivers."""
    compute, volumes = services.compute, services.volume

    def build(index: int) -> str:
        server = compute.create_server(name=f"c{index}", flavor=SMALL, image=IMAGE)
        volume = volumes.create_volume(name=f"c{index}", size_gb=1)
        compute.attach_volume(server.id, volume.id)
        return server.id

    with ThreadPoolExecutor(4) as pool:
        server_ids = list(pool.map(build, range(8)))
    servers = [compute.get_server(server_id) for server_id in server_ids]
    assert {s.status for s in servers} == {ServerStatus.ACTIVE}
    assert len({s.addresses for s in servers}) == len({s.volume_ids for s in servers}) == 8
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(compute.delete_server, server_ids))
    assert compute.list_servers() == []
    assert {v.status for v in volumes.list_volumes()} == {VolumeStatus.AVAILABLE}
    assert leftovers(settings) == []


_SECOND_PROCESS = """
import sys
from pathlib import Path
from cellar.config import Settings
from cellar.drivers.local import local_drivers
compute, _, _ = local_drivers(
    Settings(state_dir=Path(sys.argv[1]), local_bridge=sys.argv[2], local_cidr=sys.argv[3])
)
server = compute.get_server(sys.argv[4])
print(server.status.value, *server.addresses)
"""


def test_another_process_sees_the_same_servers(
    settings: Settings, services: Services, wait: Wait
) -> None:
    server = services.compute.create_server(name=unique("server"), flavor=SMALL, image=IMAGE)
    argv = [str(settings.state_dir), settings.local_bridge, settings.local_cidr, server.id]
    other = subprocess.run(
        [sys.executable, "-c", _SECOND_PROCESS, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert other.stdout.split() == ["ACTIVE", server.addresses[0]]


def test_the_registry_builds_the_local_backend(settings: Settings) -> None:
    built = registry.build_services(settings.with_(backend="local"))
    assert isinstance(built.compute, LocalCompute) and isinstance(built.volume, LocalVolume)
    assert isinstance(built.network, LocalNetwork)
    assert isinstance(built.dns, LocalDNSDriver) and isinstance(built.guest, LocalGuestDriver)
    assert infrastructure(settings)  # the bridge and the host's table are up
