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
    """A signal with a wrong token or an invalid body; `field` names the part at fault."""

    def __init__(self, message: str, field: str = "token") -> None:
        super().__init__(message)
        self.field = field


class SignalStore(Protocol):
    """Where the signals of wait condition handles are kept, by handle id, in arrival
    order. `MemorySignals` serves a single process; the task manager's engine uses the
    database (`cellar.db.stacks.DbSignalStore`) so that the API can take an agent's signal
    and the engine, in another process, see it."""

    def add(self, handle_id: str, signal: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Store `signal` (checked by `signal_body`) with Heat's defaults filled in: a
        signal with the `id` of an earlier one replaces it. All of the handle's signals."""
        ...

    def get(self, handle_id: str) -> list[dict[str, Any]]:
        """The handle's signals, `{status, reason, data}` each, oldest first."""
        ...

    def drop(self, handle_id: str) -> None: ...


def signal_body(details: Mapping[str, Any]) -> dict[str, Any]:
    """A token signal's body as Heat's WaitConditionHandle takes it: only the keys
    `status`, `reason`, `data`, `id`, and a status of SUCCESS or FAILURE (the default)."""
    unknown = set(details) - SIGNAL_KEYS
    if unknown:
        first = sorted(unknown)[0]
        raise SignalRefused(f"Signal refused: unknown keys {sorted(unknown)}", first)
    status = details.get("status") or SUCCESS
    if status not in (SUCCESS, FAILURE):
        raise SignalRefused(f"Signal refused: status must be {SUCCESS} or {FAILURE}", "status")
    return {**details, "status": status}


def stored_signal(signal: Mapping[str, Any], number: int) -> dict[str, Any]:
    """What is kept of the `number`th signal of a handle (Heat's default reason)."""
    return {
        "status": signal.get("status") or SUCCESS,
        "reason": signal.get("reason") or f"Signal {number} received",
        "data": signal.get("data"),
    }


class MemorySignals:
    """A `SignalStore` in this process's memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_handle: dict[str, dict[str, dict[str, Any]]] = {}

    def add(self, handle_id: str, signal: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        with self._lock:
            signals = self._by_handle.setdefault(handle_id, {})
            number = len(signals) + 1
            signals[str(signal.get("id") or number)] = stored_signal(signal, number)
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
    signals: SignalStore = field(default_factory=MemorySignals)


class CloudResource(Resource):
    """A resource bound to a `_Cloud` (set on the subclasses `cloud_registry` makes)."""

    cloud: ClassVar[_Cloud]

    def _name(self) -> str:
        name = self.properties.get("name")
        return str(name) if name else f"{self.name}-{self.physical_id[:8]}"
