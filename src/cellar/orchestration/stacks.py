"""What every orchestration backend offers (the embedded engine in `orchestration.local`,
real Heat through openstacksdk): stacks made from HOT templates (`orchestration.templates`).

A resource manager receives a `StackService`; it never imports a concrete one. Statuses are
Heat's strings, `<ACTION>_<STATUS>` (`CREATE_IN_PROGRESS`, `UPDATE_COMPLETE`,
`ROLLBACK_COMPLETE`, ...), on stacks, resources and events alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from cellar.domain.errors import CellarError, NotFound

# The signal the embedded engine's OS::Nova::Server handles: `{"action": "reboot"}`.
REBOOT = "reboot"

# How a stack's status reason starts when its operation's engine died (Heat's words).
ENGINE_WENT_DOWN = "Engine went down during"


class StackNotFound(NotFound):
    def __init__(self, stack_id: str) -> None:
        super().__init__("Stack", stack_id)
        self.stack_id = stack_id


class StackError(CellarError):
    """The orchestration service refused or failed an operation on a stack."""

    def __init__(self, message: str, *, stack_id: str | None = None) -> None:
        super().__init__(message)
        self.stack_id = stack_id


class SignalNotSupported(StackError):
    """The resource takes no such signal on this service (Heat's servers take none): the
    caller does the work another way (the orchestrator reboots through compute)."""


@dataclass(frozen=True)
class Stack:
    id: str
    name: str
    status: str
    status_reason: str = ""
    outputs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def action(self) -> str:
        """`CREATE` of `CREATE_IN_PROGRESS` (Heat's actions are one word)."""
        return self.status.partition("_")[0]

    @property
    def is_in_progress(self) -> bool:
        return self.status.endswith("_IN_PROGRESS")

    @property
    def is_failed(self) -> bool:
        return self.status.endswith("_FAILED")

    @property
    def is_interrupted(self) -> bool:
        """Failed because the engine running the operation died: Heat's reason "Engine
        went down during stack CREATE" (the embedded engine uses the same words). Such a
        stack is retried: updated with its own template and parameters, or deleted."""
        return self.is_failed and self.status_reason.startswith(ENGINE_WENT_DOWN)


@dataclass(frozen=True)
class StackResource:
    name: str
    """The logical name in the template (`server`, `m_<id>_volume`)."""
    type: str
    physical_id: str | None
    """The cloud resource's id, None until it has one."""
    status: str
    status_reason: str = ""


@dataclass(frozen=True)
class StackEvent:
    id: str
    resource_name: str
    """The logical resource name, or the stack's name for a stack-level event."""
    physical_id: str | None
    action: str
    status: str
    reason: str
    timestamp: datetime
    resource_type: str = ""


class StackService(Protocol):
    """Stacks of one project, Heat's way.

    Errors: `StackNotFound` for an unknown (or deleted) stack id, `StackError` for anything
    the service refuses or fails; operations run asynchronously: poll `get` for the status.
    """

    def create(
        self,
        name: str,
        template: Mapping[str, Any],
        parameters: Mapping[str, Any],
        *,
        disable_rollback: bool = False,
    ) -> str:
        """Start creating a stack and return its id. With rollback enabled (the default
        here, unlike Heat's API default) a failed create deletes what it made and ends
        `ROLLBACK_COMPLETE`."""
        ...

    def update(
        self,
        stack_id: str,
        *,
        template: Mapping[str, Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> None:
        """Start an update with PATCH semantics: no template keeps the stored one, and
        parameters not given keep their current value.

        openstacksdk's `update_stack` (`Stack.commit`) is a PUT, which resets parameters
        left out to their template defaults: the Heat implementation must send a PATCH
        through the orchestration proxy (`proxy.patch(f"/stacks/{name}/{id}", json=...)`).
        """
        ...

    def get(self, stack_id: str) -> Stack: ...

    def find(self, name: str) -> Stack | None:
        """The live stack named `name` (Heat's lookup by name), or None. A create whose
        caller died before it recorded the id is found again this way."""
        ...

    def template(self, stack_id: str) -> dict[str, Any]:
        """The template stored with the stack, as Heat's `GET /stacks/{name}/{id}/template`:
        the one given at create or by the last update (after a rollback, the one the
        stack returned to; after a failed update without one, the new one). A change that
        the template holds as data (security-group rules, the DNS record) is made by
        editing it and updating the stack with the result. The caller owns what is
        returned."""
        ...

    def resources(self, stack_id: str) -> list[StackResource]: ...

    def events(self, stack_id: str) -> list[StackEvent]:
        """The stack's events, oldest first."""
        ...

    def signal(self, stack_id: str, resource_name: str, data: Mapping[str, Any]) -> None:
        """Signal a resource, as Heat's `POST .../resources/{name}/signal`.

        The embedded engine's `OS::Nova::Server` handles `{"action": REBOOT}`. Real Heat has
        no reboot signal (a server does not handle signals at all): its implementation
        raises `SignalNotSupported`, and the orchestrator then reboots the stack's server
        through compute (the instance's events record it; the stack's do not).
        """
        ...

    def delete(self, stack_id: str) -> None:
        """Start deleting the stack (resources in reverse dependency order)."""
        ...
