"""The driver contracts: one suite per service base, which every backend must pass.

A backend's test module subclasses each class and provides a `services` fixture (a
`cellar.drivers.registry.Services`); the `wait` fixture (conftest) polls until a state
is reached, so a slow backend passes the same suite. The suites use only the driver
bases' API, never a backend's own, and name everything they create uniquely.
"""

from __future__ import annotations

from contract_backup import BackupContract
from contract_compute import ComputeContract
from contract_dns import DNSContract
from contract_guest import GuestContract
from contract_network import NetworkContract
from contract_support import Wait
from contract_volume import VolumeContract

__all__ = [
    "BackupContract",
    "ComputeContract",
    "DNSContract",
    "GuestContract",
    "NetworkContract",
    "VolumeContract",
    "Wait",
]
