"""The local DNS driver passes the DNS contract, and refuses what its server cannot serve."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from contract import DNSContract

from cellar.config import Settings
from cellar.drivers.base import InvalidRequest
from cellar.drivers.fake import FakeCloud, fake_services
from cellar.drivers.local.dns import LocalDNSDriver
from cellar.drivers.registry import Services
from cellar.localcloud.dns import RECORD
from cellar.localcloud.state import CloudState


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state")


@pytest.fixture
def driver(settings: Settings) -> LocalDNSDriver:
    return LocalDNSDriver(settings)


@pytest.fixture
def services(tmp_path: Path, driver: LocalDNSDriver) -> Iterator[Services]:
    cloud = FakeCloud(tmp_path / "fake.sqlite")
    yield dataclasses.replace(fake_services(cloud), dns=driver)
    cloud.close()


class TestLocalDNS(DNSContract):
    pass


@pytest.mark.parametrize(
    ("name", "rtype", "data", "ttl"),
    [
        ("db.example.com", "A", "10.0.0.1", 60),  # outside the zone
        ("cellar.internal.evil", "A", "10.0.0.1", 60),
        ("bad name.cellar.internal", "A", "10.0.0.1", 60),
        ("-x.cellar.internal", "A", "10.0.0.1", 60),
        (f"{'a' * 64}.cellar.internal", "A", "10.0.0.1", 60),
        ("db.cellar.internal", "A", "fe80::1", 60),
        ("db.cellar.internal", "A", "10.0.0.256", 60),
        ("db.cellar.internal", "AAAA", "10.0.0.1", 60),
        ("db.cellar.internal", "CNAME", "not a name", 60),
        ("db.cellar.internal", "TXT", "x" * 256, 60),
        ("db.cellar.internal", "MX", "10 mail.cellar.internal", 60),
        ("db.cellar.internal", "A", "10.0.0.1", 0),
    ],
)
def test_invalid_records_are_refused(
    driver: LocalDNSDriver, name: str, rtype: str, data: str, ttl: int
) -> None:
    with pytest.raises(InvalidRequest):
        driver.create_record(name=name, rtype=rtype, data=data, ttl=ttl)
    assert driver.list_records() == []


def test_an_update_checks_the_data_by_type(driver: LocalDNSDriver) -> None:
    record = driver.create_record(name="db.cellar.internal", rtype="A", data="10.0.0.1")
    with pytest.raises(InvalidRequest):
        driver.update_record(record.id, data="fe80::1")
    assert driver.get_record(record.id).data == "10.0.0.1"


def test_names_compare_as_dns_does(driver: LocalDNSDriver, settings: Settings) -> None:
    record = driver.create_record(name="DB.Cellar.Internal.", rtype="A", data="10.0.0.1")
    assert record.name == "DB.Cellar.Internal."
    found = driver.find_record("db.cellar.internal", "A")
    assert found is not None and found.id == record.id
    with pytest.raises(InvalidRequest, match="already exists"):
        driver.create_record(name="db.cellar.internal", rtype="A", data="10.0.0.2")
    state = CloudState(settings.local_root / "state.sqlite")
    assert [row.name for row in state.list(RECORD)] == ["db.cellar.internal"]


def test_a_cname_shares_its_name_with_no_other_record(driver: LocalDNSDriver) -> None:
    driver.create_record(name="a.cellar.internal", rtype="A", data="10.0.0.1")
    with pytest.raises(InvalidRequest, match="CNAME"):
        driver.create_record(name="a.cellar.internal", rtype="CNAME", data="b.cellar.internal")
    driver.create_record(name="c.cellar.internal", rtype="CNAME", data="a.cellar.internal")
    with pytest.raises(InvalidRequest, match="CNAME"):
        driver.create_record(name="c.cellar.internal", rtype="TXT", data="x")


def test_another_zone_is_honoured(tmp_path: Path) -> None:
    driver = LocalDNSDriver(Settings(state_dir=tmp_path, dns_zone="db.example.org"))
    driver.create_record(name="pg1.db.example.org", rtype="A", data="10.0.0.1")
    with pytest.raises(InvalidRequest, match=r"not in the zone db\.example\.org"):
        driver.create_record(name="pg1.cellar.internal", rtype="A", data="10.0.0.1")
