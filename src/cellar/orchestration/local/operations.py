"""The stack-level operations the engine runs on its pool: create, update and delete.

Each one drives the stack's resource tasks (`resource_tasks`) through the scheduler and
records the stack's own state changes, from ``*_IN_PROGRESS`` to ``COMPLETE`` or ``FAILED``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cellar.domain.errors import CellarError
from cellar.orchestration.local.context import Context, Plan, make_plan
from cellar.orchestration.local.resource_tasks import ResourceTasks
from cellar.orchestration.local.resources import Registry
from cellar.orchestration.local.scheduler import Task, run_tasks
from cellar.orchestration.local.states import (
    COMPLETE,
    CREATE,
    FAILED,
    IN_PROGRESS,
    ROLLBACK,
    UPDATE,
    set_stack_state,
)
from cellar.orchestration.local.store import StackRecord, StackStore


@dataclass(frozen=True)
class Previous:
    """The stack's template and parameters before an update: what a rollback returns to
    (kept by the running operation only, as the store holds one template per stack)."""

    template: Mapping[str, Any]
    parameters: Mapping[str, Any]


class StackOperations:
    """Create, update and delete stacks of `store`; each call runs to the operation's end."""

    def __init__(self, store: StackStore, registry: Registry, poll_interval: float) -> None:
        self.store, self.registry, self.poll_interval = store, registry, poll_interval
        self.tasks = ResourceTasks(store, registry)

    def _run(self, tasks: dict[str, Task], cancel: threading.Event) -> list[str]:
        return run_tasks(tasks, cancel, self.poll_interval)

    def _set_stack(self, stack: StackRecord, action: str, status: str, reason: str) -> None:
        set_stack_state(self.store, stack, action, status, reason)

    # Create ------------------------------------------------------------------------------

    def create(self, stack_id: str, plan: Plan, cancel: threading.Event) -> None:
        """Create every resource; on failure, delete them all again unless rollback is off."""
        stack = self.store.load_stack(stack_id)
        records = {r.name: r for r in self.store.load_resources(stack_id)}
        context = Context(stack, plan.params, records, self.registry)
        tasks = {
            name: self.tasks.create_task(records[name], plan, context, set(plan.graph[name]))
            for name in plan.template.resources
        }
        failures = self._run(tasks, cancel)
        if not failures:
            self._set_stack(stack, CREATE, COMPLETE, "Stack CREATE completed successfully")
            return
        reason = f"Resource CREATE failed: {failures[0]}"
        self._set_stack(stack, CREATE, FAILED, reason)
        if not stack.disable_rollback and not cancel.is_set():
            self.delete(stack_id, ROLLBACK, cancel)

    # Update ------------------------------------------------------------------------------

    def update(
        self, stack_id: str, plan: Plan, previous: Previous, cancel: threading.Event
    ) -> None:
        """Bring the stack to `plan`. A resource failure ends UPDATE_FAILED and, unless
        rollback is disabled (or the update was cancelled by a delete), rolls back to
        `previous`, as Heat does."""
        stack = self.store.load_stack(stack_id)
        before = {r.id for r in self.store.load_resources(stack_id) if r.current}
        failure = self._converge(stack, plan, cancel)
        if failure is None:
            self._set_stack(stack, UPDATE, COMPLETE, "Stack UPDATE completed successfully")
            return
        self._set_stack(stack, UPDATE, FAILED, failure)
        if not stack.disable_rollback and not cancel.is_set():
            self._rollback(stack, previous, before, cancel)

    def _converge(self, stack: StackRecord, plan: Plan, cancel: threading.Event) -> str | None:
        """Create, update or replace every resource of `plan`, then delete the old halves
        of replacements and the resources `plan` no longer has, in reverse dependency
        order; the stack's failure reason, or None."""
        records = {r.name: r for r in self.store.load_resources(stack.id) if r.current}
        context = Context(stack, plan.params, records, self.registry)
        tasks = {
            name: self.tasks.update_task(name, plan, context, records)
            for name in plan.template.resources
        }
        failures = self._run(tasks, cancel)
        if failures:
            return f"Resource UPDATE failed: {failures[0]}"
        leftovers = [
            r
            for r in self.store.load_resources(stack.id)
            if not r.current or r.name not in plan.template.resources
        ]
        failures = self._run(self.tasks.delete_tasks(leftovers), cancel)
        if failures:
            return f"Resource DELETE failed: {failures[0]}"
        return None

    def _rollback(
        self, stack: StackRecord, previous: Previous, before: set[str], cancel: threading.Event
    ) -> None:
        """Heat's update rollback: an update back to the previous template and parameters.
        A resource replaced by the failed update gets its old self back (still there, as
        old halves are deleted only after a successful update) and the replacement is
        deleted; a resource the failed update added is deleted; a FAILED one is kept or
        replaced as on any update (`needs_replace_failed`)."""
        stack.template, stack.parameters = dict(previous.template), dict(previous.parameters)
        self._set_stack(stack, ROLLBACK, IN_PROGRESS, "Stack ROLLBACK started")
        try:
            plan = make_plan(
                self.registry, previous.template, previous.parameters, drop_unknown=True
            )
        except CellarError as exc:  # a TemplateError: the registry changed since
            self._set_stack(stack, ROLLBACK, FAILED, f"{type(exc).__name__}: {exc}")
            return
        self._restore_replaced(stack.id, before)
        failure = self._converge(stack, plan, cancel)
        if failure is None:
            self._set_stack(stack, ROLLBACK, COMPLETE, "Stack ROLLBACK completed successfully")
        else:
            self._set_stack(stack, ROLLBACK, FAILED, failure)

    def _restore_replaced(self, stack_id: str, before: set[str]) -> None:
        """Make current again each record that was current before the failed update and
        was replaced by it, unless it is FAILED (then the replacement stays, as Heat's
        `_get_best_existing_rsrc_db` prefers it); its replacement becomes an old half."""
        records = self.store.load_resources(stack_id)
        for old in records:
            if old.id not in before or old.current or old.status == FAILED:
                continue
            for new in records:
                if new.name == old.name and new.current:
                    new.current = False
                    self.store.save_resource(new)
            old.current = True
            self.store.save_resource(old)

    # Delete ------------------------------------------------------------------------------

    def delete(self, stack_id: str, action: str, cancel: threading.Event) -> None:
        """Delete every resource under `action` (DELETE, or ROLLBACK of a failed create)."""
        stack = self.store.load_stack(stack_id)
        self._set_stack(stack, action, IN_PROGRESS, f"Stack {action} started")
        records = self.store.load_resources(stack_id)
        # A delete runs to its end even if it was itself asked to stop.
        failures = self._run(self.tasks.delete_tasks(records), threading.Event())
        if failures:
            self._set_stack(stack, action, FAILED, f"Resource DELETE failed: {failures[0]}")
        else:
            self._set_stack(stack, action, COMPLETE, f"Stack {action} completed successfully")
