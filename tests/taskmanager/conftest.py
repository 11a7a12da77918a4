"""Fixtures of the task-manager tests (helpers in `plane.py`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from plane import ControlPlane, make_plane


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    p = make_plane(tmp_path)
    try:
        yield p
    finally:
        p.tm.pool.shutdown(wait=True)
        p.engine.dispose()
