"""Fixtures of the driver contract suites; each backend's test module provides `services`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# The contracts live outside test modules: let pytest explain their failed asserts.
pytest.register_assert_rewrite(
    "contract_backup",
    "contract_compute",
    "contract_dns",
    "contract_guest",
    "contract_network",
    "contract_volume",
)

from contract_support import Wait  # noqa: E402

from cellar.drivers.fake import FakeCloud  # noqa: E402


@pytest.fixture
def wait() -> Wait:
    """Polls for a state; a backend with slow operations may override it with a longer timeout."""
    return Wait(timeout_s=30.0)


@pytest.fixture
def fake_cloud(tmp_path: Path) -> Iterator[FakeCloud]:
    """A fake cloud without latency in a fresh SQLite file."""
    cloud = FakeCloud(tmp_path / "fake-cloud.sqlite")
    yield cloud
    cloud.close()
