"""Quotas per project, Trove's resources (`trove/quota/quota.py`): how many instances, how
much RAM (MB) their flavors take, how many gigabytes their volumes hold (`volumes`), how
many backups. A limit of -1 is unlimited. Usage is counted from what exists, so it can
never drift from it (Trove keeps usage rows that can)."""

from __future__ import annotations

from collections.abc import Mapping

from cellar.domain.errors import QuotaExceeded

INSTANCES = "instances"
RAM = "ram"
VOLUMES = "volumes"
BACKUPS = "backups"
RESOURCES = (INSTANCES, RAM, VOLUMES, BACKUPS)
UNLIMITED = -1


def check(limits: Mapping[str, int], usage: Mapping[str, int], deltas: Mapping[str, int]) -> None:
    """Raise QuotaExceeded naming every resource a positive delta takes past its limit
    (Trove's `check_quotas`)."""
    overs = [
        name
        for name, delta in deltas.items()
        if delta > 0 and limits[name] != UNLIMITED and usage[name] + delta > limits[name]
    ]
    if overs:
        raise QuotaExceeded(overs)
