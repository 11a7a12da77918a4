"""An embedded engine for templates that need no cloud service (test, value, random string,
wait condition resources): there is none to give it."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from cellar.domain.specs import FlavorSpec
from cellar.orchestration.local.cloud_base import MemorySignals, SignalStore
from cellar.orchestration.local.service import LocalStackService


def _no_flavors(flavor_id: str) -> FlavorSpec:
    raise AssertionError("this engine serves templates without servers")


def no_cloud_stacks(**kwargs: Any) -> LocalStackService:
    """`LocalStackService.build` without cloud services; `kwargs` go to it (store,
    signals, signal_url, poll_interval, ...)."""
    services = SimpleNamespace(compute=None, volume=None, network=None, dns=None)
    return LocalStackService.build(services, flavors=_no_flavors, **kwargs)


class WatchedSignals:
    """A real signal store (`inner`) that counts the engine's reads: a test that checks
    a wait condition keeps waiting waits, with a deadline, until the engine has read the
    signals again after the ones it sent (`read_again`), then asserts."""

    def __init__(self, inner: SignalStore | None = None) -> None:
        self.inner: SignalStore = inner if inner is not None else MemorySignals()
        self._reads = 0
        self._lock = threading.Lock()

    def add(self, handle_id: str, signal: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        return self.inner.add(handle_id, signal)

    def get(self, handle_id: str) -> list[dict[str, Any]]:
        found = self.inner.get(handle_id)
        with self._lock:
            self._reads += 1
        return found

    def drop(self, handle_id: str) -> None:
        self.inner.drop(handle_id)

    def read_again(self, timeout: float = 10) -> None:
        """Return once the engine began a read after this call (two more reads: the first
        may have begun before), or fail after `timeout` seconds."""
        with self._lock:
            target = self._reads + 2
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if self._reads >= target:
                    return
            assert time.monotonic() < deadline, "the engine never read the signals again"
            time.sleep(0.002)
