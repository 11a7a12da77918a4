"""The fake backend: six drivers over one `FakeCloud`, a SQLite file that several
processes share, with latency and fault injection for tests and benchmarks."""

from __future__ import annotations

from cellar.config import Settings
from cellar.drivers.fake.backup import FakeBackup
from cellar.drivers.fake.cloud import FakeCloud
from cellar.drivers.fake.compute import FakeCompute
from cellar.drivers.fake.dns import FakeDNS
from cellar.drivers.fake.guest import FakeGuest
from cellar.drivers.fake.network import FakeNetwork
from cellar.drivers.fake.volume import FakeVolume
from cellar.drivers.registry import Services

__all__ = ["FakeCloud", "build_guest", "build_services", "fake_services"]


def fake_services(cloud: FakeCloud) -> Services:
    """The six drivers, as views on `cloud`."""
    return Services(
        compute=FakeCompute(cloud),
        volume=FakeVolume(cloud),
        network=FakeNetwork(cloud),
        dns=FakeDNS(cloud),
        guest=FakeGuest(cloud),
        backup=FakeBackup(cloud),
    )


def build_guest(settings: Settings) -> FakeGuest:
    return FakeGuest(FakeCloud(settings.fake_cloud_path, settings.fake_latency_s))


def build_services(settings: Settings) -> Services:
    """The fake cloud at `settings.fake_cloud_path`, created if missing."""
    return fake_services(FakeCloud(settings.fake_cloud_path, settings.fake_latency_s))
