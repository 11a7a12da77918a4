"""Where the local engine keeps stacks, resources and events.

`StackStore` is what the engine needs; `MemoryStore` keeps everything in memory (a
database-backed store comes later, and the engine does not care). Records are plain
dataclasses; a store returns copies, so nothing outside it mutates what it holds.
"""

from __future__ import annotations

import copy
import datetime
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from cellar.domain.errors import NotFound
from cellar.orchestration.stacks import ENGINE_WENT_DOWN


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class StackRecord:
    id: str
    name: str
    template: dict[str, Any]
    parameters: dict[str, Any]  # as given by the user (merged on PATCH updates)
    action: str
    status: str
    status_reason: str = ""
    disable_rollback: bool = False
    created_at: datetime.datetime = field(default_factory=now)
    updated_at: datetime.datetime = field(default_factory=now)

    @property
    def state(self) -> str:
        return f"{self.action}_{self.status}"


@dataclass
class ResourceRecord:
    id: str  # the record's own id: a replaced resource briefly has two records
    stack_id: str
    name: str
    type: str
    physical_id: str
    action: str
    status: str
    status_reason: str = ""
    properties: dict[str, Any] = field(default_factory=dict)  # resolved, as last applied
    data: dict[str, Any] = field(default_factory=dict)  # the plugin's own state
    requires: list[str] = field(default_factory=list)
    current: bool = True  # False for the old half of a replacement, until deleted
    created_at: datetime.datetime = field(default_factory=now)
    updated_at: datetime.datetime = field(default_factory=now)

    @property
    def state(self) -> str:
        return f"{self.action}_{self.status}"


@dataclass(frozen=True)
class EventRecord:
    id: int
    stack_id: str
    resource_name: str
    physical_resource_id: str
    action: str
    status: str
    reason: str
    timestamp: datetime.datetime


class StackStore(Protocol):
    def save_stack(self, stack: StackRecord) -> None: ...

    def load_stack(self, stack_id: str) -> StackRecord: ...

    def list_stacks(self) -> list[StackRecord]: ...

    def find_stacks(self, name: str) -> list[StackRecord]:
        """The stacks named `name` (deleted ones too), oldest first."""
        ...

    def save_resource(self, resource: ResourceRecord) -> None: ...

    def delete_resource(self, stack_id: str, record_id: str) -> None: ...

    def load_resources(self, stack_id: str) -> list[ResourceRecord]: ...

    def add_event(
        self,
        stack_id: str,
        resource_name: str,
        physical_resource_id: str,
        action: str,
        status: str,
        reason: str,
    ) -> EventRecord: ...

    def load_events(self, stack_id: str) -> list[EventRecord]: ...


class MemoryStore:
    """A `StackStore` in memory, safe to use from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stacks: dict[str, StackRecord] = {}
        self._resources: dict[str, dict[str, ResourceRecord]] = {}
        self._events: dict[str, list[EventRecord]] = {}
        self._next_event = 1

    def save_stack(self, stack: StackRecord) -> None:
        with self._lock:
            self._stacks[stack.id] = copy.deepcopy(stack)
            self._resources.setdefault(stack.id, {})
            self._events.setdefault(stack.id, [])

    def load_stack(self, stack_id: str) -> StackRecord:
        with self._lock:
            try:
                return copy.deepcopy(self._stacks[stack_id])
            except KeyError:
                raise NotFound("Stack", stack_id) from None

    def list_stacks(self) -> list[StackRecord]:
        with self._lock:
            return [copy.deepcopy(stack) for stack in self._stacks.values()]

    def find_stacks(self, name: str) -> list[StackRecord]:
        with self._lock:
            named = [s for s in self._stacks.values() if s.name == name]
            return [copy.deepcopy(s) for s in sorted(named, key=lambda s: s.created_at)]

    def save_resource(self, resource: ResourceRecord) -> None:
        with self._lock:
            self._resources.setdefault(resource.stack_id, {})[resource.id] = copy.deepcopy(resource)

    def delete_resource(self, stack_id: str, record_id: str) -> None:
        with self._lock:
            self._resources.get(stack_id, {}).pop(record_id, None)

    def load_resources(self, stack_id: str) -> list[ResourceRecord]:
        with self._lock:
            return [copy.deepcopy(r) for r in self._resources.get(stack_id, {}).values()]

    def add_event(
        self,
        stack_id: str,
        resource_name: str,
        physical_resource_id: str,
        action: str,
        status: str,
        reason: str,
    ) -> EventRecord:
        with self._lock:
            event = EventRecord(
                self._next_event,
                stack_id,
                resource_name,
                physical_resource_id,
                action,
                status,
                reason,
                now(),
            )
            self._next_event += 1
            self._events.setdefault(stack_id, []).append(event)
            return event

    def load_events(self, stack_id: str) -> list[EventRecord]:
        with self._lock:
            return list(self._events.get(stack_id, []))


def engine_went_down(kind: str, action: str) -> str:
    """Heat's reason for what a dead engine left IN_PROGRESS (`reset_stack_status`):
    "Engine went down during stack UPDATE", "... during resource CREATE"."""
    return f"{ENGINE_WENT_DOWN} {kind} {action}"


def fail_interrupted(store: StackStore, stack_id: str) -> bool:
    """Fail the stack and its resources if they are IN_PROGRESS (an operation no engine
    runs any more): each change gets its event, as the engine's own do. Call it only for
    a stack no live engine works on. Whether the stack was in progress.

    A failed stack can then be updated (failed resources are replaced, or kept when their
    plugin says they survived: `needs_replace_failed`) or deleted, as in Heat.
    """
    stack = store.load_stack(stack_id)
    if stack.status != "IN_PROGRESS":
        return False
    for record in store.load_resources(stack_id):
        if record.status != "IN_PROGRESS":
            continue
        reason = engine_went_down("resource", record.action)
        record.status, record.status_reason, record.updated_at = "FAILED", reason, now()
        store.save_resource(record)
        store.add_event(stack_id, record.name, record.physical_id, record.action, "FAILED", reason)
    reason = engine_went_down("stack", stack.action)
    stack.status, stack.status_reason, stack.updated_at = "FAILED", reason, now()
    store.save_stack(stack)
    store.add_event(stack_id, stack.name, stack_id, stack.action, "FAILED", reason)
    return True
