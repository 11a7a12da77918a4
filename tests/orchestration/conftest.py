"""Fixtures of the local stack engine's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cellar.orchestration.local.engine import StackEngine
from cellar.orchestration.local.store import MemoryStore


@pytest.fixture
def engine() -> Iterator[StackEngine]:
    eng = StackEngine(MemoryStore(), max_workers=2, poll_interval=0.002)
    try:
        yield eng
    finally:
        eng.close()
