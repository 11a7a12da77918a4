"""An embedded engine for templates that need no cloud service (test, value, random string,
wait condition resources): there is none to give it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from cellar.domain.specs import FlavorSpec
from cellar.orchestration.local.service import LocalStackService


def _no_flavors(flavor_id: str) -> FlavorSpec:
    raise AssertionError("this engine serves templates without servers")


def no_cloud_stacks(**kwargs: Any) -> LocalStackService:
    """`LocalStackService.build` without cloud services; `kwargs` go to it (store,
    signals, signal_url, poll_interval, ...)."""
    services = SimpleNamespace(compute=None, volume=None, network=None, dns=None)
    return LocalStackService.build(services, flavors=_no_flavors, **kwargs)
