"""The guest: the agent inside each server, seen from the control plane.

Guest commands are not resource-manager operations: every manager uses this same client.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from cellar.domain.specs import InstanceSpec
from cellar.domain.status import ServiceStatus
from cellar.drivers.base import DriverError, DriverOperationNotSupported


class GuestError(DriverError):
    """The guest refused or failed a command."""


@dataclass(frozen=True)
class GuestStatus:
    service: ServiceStatus
    # Seconds since the guest last reported; None when it never has.
    age_s: float | None = None
    # What the guest says went wrong (a failed prepare), if anything.
    error: str | None = None


class GuestDriver(abc.ABC):
    name: str = "guest"

    @property
    def control_plane_url(self) -> str | None:
        """The control plane's API as the guests reach it, or None when the guest runs no
        code of its own (the fake)."""
        return None

    @property
    def signals_ready(self) -> bool:
        """Whether the guest itself signals its stack's wait condition (POSTs to the
        handle's endpoint) when its datastore is ready; if not, the orchestrator signals
        for it once the guest reports RUNNING."""
        return self.control_plane_url is not None

    def user_data(self, instance_id: str) -> dict[str, str]:
        """What the server's config drive must carry for its guest agent to find the
        control plane (address, per-instance secret). Nothing by default."""
        return {}

    @abc.abstractmethod
    def prepare(self, instance_id: str, *, server_id: str, spec: InstanceSpec) -> None:
        """Ask the guest to set up the datastore (asynchronous: poll `status`)."""

    @abc.abstractmethod
    def status(self, instance_id: str) -> GuestStatus: ...

    @abc.abstractmethod
    def stop_db(self, instance_id: str) -> None: ...

    @abc.abstractmethod
    def start_db(self, instance_id: str) -> None: ...

    @abc.abstractmethod
    def restart(self, instance_id: str) -> None: ...

    @abc.abstractmethod
    def resize_fs(self, instance_id: str) -> None:
        """Grow the datastore's filesystem to its volume's new size."""

    def enable_root(self, instance_id: str) -> tuple[str, str]:
        """Give the datastore's superuser a new password; returns (user name, password).
        The password is kept nowhere: the caller gets it once (Trove's `POST .../root`)."""
        raise DriverOperationNotSupported(self.name, "enable_root")

    @abc.abstractmethod
    def forget(self, instance_id: str) -> None:
        """Drop whatever the control plane holds for this guest (on delete)."""
