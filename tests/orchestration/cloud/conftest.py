"""Fixtures: a LocalStackService over the fake cloud (latency 0)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cellar.domain.specs import FlavorSpec
from cellar.drivers.fake import FakeCloud, fake_services
from cellar.drivers.registry import Services
from cellar.orchestration.local.service import LocalStackService

from ..no_cloud import WatchedSignals

SMALL = FlavorSpec(id="f-small", name="small", ram_mb=512, vcpus=1)
LARGE = FlavorSpec(id="f-large", name="large", ram_mb=4096, vcpus=4)
FLAVORS = {f.id: f for f in (SMALL, LARGE)}


@pytest.fixture
def services(tmp_path: Path) -> Services:
    return fake_services(FakeCloud(tmp_path / "fake.sqlite"))


@pytest.fixture
def signals() -> WatchedSignals:
    return WatchedSignals()


@pytest.fixture
def stacks(services: Services, signals: WatchedSignals) -> Iterator[LocalStackService]:
    service = LocalStackService.build(
        services,
        flavors=FLAVORS.__getitem__,
        max_workers=2,
        poll_interval=0.002,
        signals=signals,
    )
    try:
        yield service
    finally:
        service.close()
