"""Fixtures of the local cloud's own tests: a started cloud, torn down after each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cloud_helpers import SLEEPER, agent, cloud_settings

from cellar.localcloud.cleanup import infrastructure, leftovers, teardown
from cellar.localcloud.servers import Servers, state_path
from cellar.localcloud.state import CloudState


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Servers]:
    """A started cloud of its own (stand-in agent: `sleep`); however the test ends, it is
    torn down, and nothing of it may be left on the host."""
    settings = cloud_settings(tmp_path)
    servers = Servers(
        settings, CloudState(state_path(settings)), agent_command=agent(SLEEPER), grace_s=2.0
    )
    try:
        servers.start()
        yield servers
    finally:
        teardown(settings)
    assert leftovers(settings) == []
    assert infrastructure(settings) == []
