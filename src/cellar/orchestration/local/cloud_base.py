"""What the cloud resource plugins share: the drivers they run on (`CloudServices`), the
signals received by wait condition handles, their errors and their base class."""

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from cellar.domain.specs import FlavorSpec
from cellar.orchestration.local.resources import (
    Resource,
    ResourceFailure,
)

SUCCESS, FAILURE = "SUCCESS", "FAILURE"
# Volume statuses (the values of the volume driver's VolumeStatus).
AVAILABLE, IN_USE, ERROR = "available", "in-use", "error"


# Set by `LocalStackService.signal` when called without a handle token: the caller is the
# stack's owner (as on Heat's authenticated signal API), not an agent with a token.
OWNER = "_owner"


class CloudServices(Protocol):
    """What the plugins use of `cellar.drivers.registry.Services` (the import contract
    keeps `cellar.orchestration` and `cellar.drivers` apart: drivers are duck-typed, their
    not-found errors are `cellar.domain.errors.NotFound`)."""

    @property
    def compute(self) -> Any: ...

    @property
    def volume(self) -> Any: ...

    @property
    def network(self) -> Any: ...

    @property
    def dns(self) -> Any: ...


SIGNAL_KEYS = frozenset({"status", "reason", "data", "id"})


class WaitConditionFailure(ResourceFailure):
    """A FAILURE signal arrived (Heat's exception name, so the reason reads as Heat's)."""


class WaitConditionTimeout(ResourceFailure):
    """Fewer than `count` SUCCESS signals arrived in time: "N of M received"."""


class SignalRefused(ResourceFailure):
    """A signal with a wrong token or an invalid body."""


class _Signals:
    """The signals of every wait condition handle, by handle id, in arrival order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_handle: dict[str, dict[str, dict[str, Any]]] = {}

    def add(self, handle_id: str, signal: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Store `signal` (Heat's defaults filled in) and return all of the handle's."""
        with self._lock:
            signals = self._by_handle.setdefault(handle_id, {})
            number = len(signals) + 1
            sid = str(signal.get("id") or number)
            signals[sid] = {
                "status": signal.get("status") or SUCCESS,
                "reason": signal.get("reason") or f"Signal {number} received",
                "data": signal.get("data"),
            }
            return {k: dict(v) for k, v in signals.items()}

    def get(self, handle_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(v) for v in self._by_handle.get(handle_id, {}).values()]

    def drop(self, handle_id: str) -> None:
        with self._lock:
            self._by_handle.pop(handle_id, None)


@dataclass
class _Cloud:
    services: CloudServices
    flavors: Callable[[str], FlavorSpec]
    signal_url: Callable[[str, str], str]
    signals: _Signals = field(default_factory=_Signals)


class CloudResource(Resource):
    """A resource bound to a `_Cloud` (set on the subclasses `cloud_registry` makes)."""

    cloud: ClassVar[_Cloud]

    def _name(self) -> str:
        name = self.properties.get("name")
        return str(name) if name else f"{self.name}-{self.physical_id[:8]}"
