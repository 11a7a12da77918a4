"""The service registry: the drivers of one backend, built from settings.

Backends are imported lazily by name, so nobody imports openstacksdk who does not use it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from cellar.config import Settings
from cellar.drivers.backup.base import BackupDriver
from cellar.drivers.compute.base import ComputeDriver
from cellar.drivers.dns.base import DNSDriver
from cellar.drivers.guest.base import GuestDriver
from cellar.drivers.network.base import NetworkDriver
from cellar.drivers.volume.base import VolumeDriver


@dataclass(frozen=True)
class Services:
    compute: ComputeDriver
    volume: VolumeDriver
    network: NetworkDriver
    dns: DNSDriver
    guest: GuestDriver
    # The backup repository (issue 11); None where the backend has none yet.
    backup: BackupDriver | None = None


_BACKENDS: dict[str, tuple[str, str]] = {
    "fake": ("cellar.drivers.fake", "build_services"),
    "local": ("cellar.drivers.local", "build_services"),
}


def build_guest(settings: Settings) -> GuestDriver:
    """The guest driver alone (the API talks to guests for `enable root`)."""
    module_name, _attr = _BACKENDS.get(settings.backend, ("", ""))
    if not module_name:
        raise ValueError(f"backend {settings.backend!r} is not available yet")
    factory: Callable[[Settings], GuestDriver] = importlib.import_module(module_name).build_guest
    return factory(settings)


def build_backups(settings: Settings) -> BackupDriver | None:
    """The backup repository alone (the API checks restore points against it)."""
    return build_services(settings).backup


def build_services(settings: Settings) -> Services:
    try:
        module_name, attr = _BACKENDS[settings.backend]
    except KeyError:
        raise ValueError(
            f"backend {settings.backend!r} is not available yet; choose one of "
            f"{', '.join(sorted(_BACKENDS))}"
        ) from None
    factory: Callable[[Settings], Services] = getattr(importlib.import_module(module_name), attr)
    return factory(settings)
