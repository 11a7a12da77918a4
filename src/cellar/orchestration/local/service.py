"""`LocalStackService`: the `StackService` protocol over the embedded `StackEngine`.

Build one for a cloud with `LocalStackService.build(services, flavors=..., signal_url=...)`
(an engine over a `MemoryStore` and `MemorySignals` unless a store and a signal store are
given, with `cloud_registry`), or wrap an engine already made with that registry:
`LocalStackService(engine)`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cellar.domain.errors import CellarError, NotFound
from cellar.domain.specs import FlavorSpec
from cellar.orchestration.local.cloud_base import OWNER, CloudServices, SignalStore
from cellar.orchestration.local.cloud_resources import cloud_registry
from cellar.orchestration.local.engine import StackEngine
from cellar.orchestration.local.resources import ResourceFailure
from cellar.orchestration.local.store import (
    MemoryStore,
    StackRecord,
    StackStore,
    engine_went_down,
    fail_interrupted,
    now,
)
from cellar.orchestration.stacks import (
    Stack,
    StackError,
    StackEvent,
    StackNotFound,
    StackResource,
)

# Where the API takes token signals (`cellar.api.routes.stacks`), below its base URL.
SIGNAL_PATH = "/orchestration/v1/stacks/{stack_id}/resources/{resource_name}/signal"


def default_signal_url(stack_id: str, resource_name: str) -> str:
    """A handle's endpoint when no API serves it: signals come through `signal` only."""
    return f"local://stacks/{stack_id}/resources/{resource_name}/signal"


def api_signal_url(base_url: str) -> Callable[[str, str], str]:
    """Handle endpoints on the API at `base_url` (as the agents reach it)."""

    def url(stack_id: str, resource_name: str) -> str:
        path = SIGNAL_PATH.format(stack_id=stack_id, resource_name=resource_name)
        return f"{base_url.rstrip('/')}{path}"

    return url


class LocalStackService:
    """Stacks on the embedded engine; see `cellar.orchestration.stacks.StackService`."""

    def __init__(self, engine: StackEngine) -> None:
        self.engine = engine

    @classmethod
    def build(
        cls,
        services: CloudServices,
        *,
        flavors: Callable[[str], FlavorSpec],
        signal_url: Callable[[str, str], str] = default_signal_url,
        store: StackStore | None = None,
        signals: SignalStore | None = None,
        max_workers: int = 4,
        poll_interval: float = 0.05,
    ) -> LocalStackService:
        registry = cloud_registry(services, flavors=flavors, signal_url=signal_url, signals=signals)
        engine = StackEngine(
            store if store is not None else MemoryStore(),
            max_workers=max_workers,
            registry=registry,
            poll_interval=poll_interval,
        )
        return cls(engine)

    def close(self) -> None:
        """Stop the engine. An operation it cancels ends FAILED with Heat's reason for an
        engine gone ("Engine went down during stack UPDATE"), so that whoever resumes the
        job of the stack's instance retries it, as after a crash."""
        for stack_id in self.engine.close():
            stack = self.engine.store.load_stack(stack_id)
            if stack.status == "FAILED":
                reason = engine_went_down("stack", stack.action)
                stack.status_reason, stack.updated_at = reason, now()
                self.engine.store.save_stack(stack)
                self.engine.store.add_event(
                    stack_id, stack.name, stack_id, stack.action, "FAILED", reason
                )

    def take_over(self, stack_id: str) -> bool:
        """Fail the stack's operation if it is IN_PROGRESS and this engine does not run it
        (Heat's `reset_stack_status` for one stack): the engine that ran it died. The
        caller must know that no live engine works on the stack: the task manager calls
        it when it resumes a job of the stack's instance, whose lease it now holds.
        Whether an operation was failed; the stack can then be updated or deleted."""
        if self.engine.is_running(stack_id):
            return False
        try:
            return fail_interrupted(self.engine.store, stack_id)
        except NotFound:
            return False

    def _stack(self, stack_id: str) -> StackRecord:
        try:
            stack = self.engine.get_stack(stack_id)
        except NotFound:
            raise StackNotFound(stack_id) from None
        if stack.state == "DELETE_COMPLETE":
            raise StackNotFound(stack_id)
        return stack

    def create(
        self,
        name: str,
        template: Mapping[str, Any],
        parameters: Mapping[str, Any],
        *,
        disable_rollback: bool = False,
    ) -> str:
        try:
            return self.engine.create_stack(
                name, template, parameters, disable_rollback=disable_rollback
            )
        except CellarError as exc:
            raise StackError(str(exc)) from exc

    def update(
        self,
        stack_id: str,
        *,
        template: Mapping[str, Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> None:
        self._stack(stack_id)
        try:
            self.engine.update_stack(stack_id, template, parameters)
        except CellarError as exc:
            raise StackError(str(exc), stack_id=stack_id) from exc

    def get(self, stack_id: str) -> Stack:
        stack = self._stack(stack_id)
        outputs: dict[str, Any] = {}
        if stack.status != "IN_PROGRESS":
            outputs = {k: v.get("value") for k, v in self.engine.outputs(stack_id).items()}
        return Stack(
            id=stack.id,
            name=stack.name,
            status=stack.state,
            status_reason=stack.status_reason,
            outputs=outputs,
        )

    def template(self, stack_id: str) -> dict[str, Any]:
        """The engine's stored template (its store hands out copies, so ours to edit)."""
        return self._stack(stack_id).template

    def find(self, name: str) -> Stack | None:
        live = [s for s in self.engine.store.find_stacks(name) if s.state != "DELETE_COMPLETE"]
        return self.get(live[-1].id) if live else None

    def resources(self, stack_id: str) -> list[StackResource]:
        self._stack(stack_id)
        return [
            StackResource(
                name=r.name,
                type=r.type,
                physical_id=r.physical_id or None,
                status=r.state,
                status_reason=r.status_reason,
            )
            for r in self.engine.resources(stack_id)
            if r.current
        ]

    def events(self, stack_id: str) -> list[StackEvent]:
        self._stack(stack_id)
        types = {r.name: r.type for r in self.engine.resources(stack_id)}
        return [
            StackEvent(
                id=str(e.id),
                resource_name=e.resource_name,
                physical_id=e.physical_resource_id or None,
                action=e.action,
                status=e.status,
                reason=e.reason,
                timestamp=e.timestamp,
                resource_type=types.get(e.resource_name, ""),
            )
            for e in self.engine.events(stack_id)
        ]

    def signal(
        self,
        stack_id: str,
        resource_name: str,
        data: Mapping[str, Any],
        *,
        token: str | None = None,
    ) -> None:
        """Signal a resource: a wait condition handle or a server (`{"action": "reboot"}`).
        With a `token` (the `X-Auth-Token` of Heat's signal URL, or in `data`) the handle
        checks it: that is an agent signalling. Without one the caller is the stack's owner
        (Heat's authenticated resource-signal API), as the task manager is.
        A refused signal raises `StackError`."""
        self._stack(stack_id)
        details = dict(data)
        if token is not None:
            details["token"] = token
        elif "token" not in details:
            details[OWNER] = True
        try:
            self.engine.signal(stack_id, resource_name, details)
        except (CellarError, ResourceFailure) as exc:
            raise StackError(str(exc), stack_id=stack_id) from exc

    def delete(self, stack_id: str) -> None:
        self._stack(stack_id)
        try:
            self.engine.delete_stack(stack_id)
        except NotFound:
            raise StackNotFound(stack_id) from None
        except CellarError as exc:
            raise StackError(str(exc), stack_id=stack_id) from exc
