"""The embedded stack engine: Heat's create, update and delete semantics on local plugins.

Operations are asynchronous, as Heat's API is: `create_stack`, `update_stack` and
`delete_stack` validate their input at once (a `TemplateError` or a `cellar.domain.errors`
error before anything is created), save the stack as ``*_IN_PROGRESS`` and return; the work
runs on a thread of the engine's pool (`max_workers` stack operations at once). `wait()`
blocks until the stack's operation has ended and returns the stack record.

`StackEngine` is the facade; the work is split by meaning:

- `operations`: the stack-level create, update and delete (with their rollbacks);
- `resource_tasks`: the per-resource create, update (in place or by replacement) and delete;
- `scheduler`: runs those tasks over the dependency graph, like Heat's task scheduler:
  every resource whose requirements are COMPLETE is started (`handle_*`), and the started
  ones are polled (`check_*_complete`) until they finish, so independent resources run
  concurrently while no plugin call blocks. On the first failure no new resource is
  started; those already running are polled to their end;
- `context`: what templates are resolved against; `states`: the state vocabulary.

Failures follow Heat. A failed create deletes what it made (``ROLLBACK_COMPLETE``) unless
the stack has ``disable_rollback``. A failed update ends ``UPDATE_FAILED`` and, unless
``disable_rollback``, is rolled back: an update back to the previous template and
parameters (``ROLLBACK_IN_PROGRESS`` then ``ROLLBACK_COMPLETE`` or ``ROLLBACK_FAILED``), in
which a resource the update replaced gets its old physical resource back and the resources
it added or created as replacements are deleted. On any update a FAILED resource is
replaced only if its plugin says so (`Resource.needs_replace_failed`): a server or volume
that still exists and is usable is kept, with its physical id.

Not done (yet): suspend/resume/check, cancel_update, timeouts, create retries
(``action_retry_limit``), deletion policies, immutable parameters, conditions, restricted
actions and hooks, preview_update. A rollback's previous template is kept in memory by the
running operation only: an update interrupted by an engine restart is not rolled back.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from cellar.domain.errors import Conflict, NotFound, UnprocessableEntity
from cellar.orchestration.local import functions
from cellar.orchestration.local.context import Context, Plan, make_plan, plugin_for
from cellar.orchestration.local.operations import Previous, StackOperations
from cellar.orchestration.local.resources import Registry, default_registry
from cellar.orchestration.local.states import (
    COMPLETE,
    CREATE,
    DELETE,
    FAILED,
    IN_PROGRESS,
    INIT,
    UPDATE,
    set_stack_state,
)
from cellar.orchestration.local.store import (
    EventRecord,
    ResourceRecord,
    StackRecord,
    StackStore,
)
from cellar.orchestration.local.template import Template, TemplateError, parse_template

LOG = logging.getLogger(__name__)

STACK_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9_.-]{0,254}")


class StackEngine:
    """Heat's stack operations over a `StackStore`; see the module's docstring."""

    def __init__(
        self,
        store: StackStore,
        *,
        max_workers: int = 4,
        registry: Registry | None = None,
        poll_interval: float = 0.005,
    ) -> None:
        self.store = store
        self.registry = registry or default_registry()
        self.poll_interval = poll_interval
        self._operations = StackOperations(store, self.registry, poll_interval)
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="stack")
        self._cond = threading.Condition()
        self._running: dict[str, Future[None]] = {}
        self._cancel: dict[str, threading.Event] = {}

    def close(self) -> list[str]:
        """Cancel running operations and wait for the pool to stop; the ids of the stacks
        whose operation was cancelled."""
        with self._cond:
            cancelled = list(self._cancel)
            for event in self._cancel.values():
                event.set()
        self._pool.shutdown(wait=True)
        return cancelled

    # Public API --------------------------------------------------------------------------

    def validate(
        self, template: Mapping[str, Any], parameters: Mapping[str, Any] | None = None
    ) -> Template:
        """The parsed template, after every check that can be made before creating anything."""
        return self._plan(template, parameters or {}, drop_unknown=False).template

    def create_stack(
        self,
        name: str,
        template: Mapping[str, Any],
        parameters: Mapping[str, Any] | None = None,
        disable_rollback: bool = False,
    ) -> str:
        if not isinstance(name, str) or STACK_NAME.fullmatch(name) is None:
            raise TemplateError("name", f"invalid stack name {name!r}")
        plan = self._plan(template, parameters or {}, drop_unknown=False)
        stack = StackRecord(
            id=str(uuid.uuid4()),
            name=name,
            template=dict(template),
            parameters=dict(parameters or {}),
            action=CREATE,
            status=IN_PROGRESS,
            status_reason="Stack CREATE started",
            disable_rollback=disable_rollback,
        )
        self.store.save_stack(stack)
        self.store.add_event(stack.id, name, stack.id, CREATE, IN_PROGRESS, stack.status_reason)
        for rname, definition in plan.template.resources.items():
            self.store.save_resource(
                ResourceRecord(
                    id=str(uuid.uuid4()),
                    stack_id=stack.id,
                    name=rname,
                    type=definition.type,
                    physical_id="",
                    action=INIT,
                    status=COMPLETE,
                    requires=sorted(plan.graph[rname]),
                )
            )
        operations = self._operations
        self._submit(stack.id, lambda cancel: operations.create(stack.id, plan, cancel))
        return stack.id

    def update_stack(
        self,
        stack_id: str,
        template: Mapping[str, Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> None:
        """A PATCH update: no template keeps the stored one; parameters are merged onto the
        stored ones, and those the template does not declare are dropped."""
        with self._cond:
            stack = self.get_stack(stack_id)
            if stack.status == IN_PROGRESS or stack_id in self._running:
                raise Conflict(f"Stack {stack.name} is {stack.state}; try again later.")
            if stack.action == DELETE:
                raise UnprocessableEntity(f"Stack {stack.name} is {stack.state}.")
            raw = dict(template) if template is not None else stack.template
            merged = {**stack.parameters, **(parameters or {})}
            plan = self._plan(raw, merged, drop_unknown=True)
            previous = Previous(stack.template, stack.parameters)
            stack.template = raw
            stack.parameters = {k: v for k, v in merged.items() if k in plan.template.parameters}
            set_stack_state(self.store, stack, UPDATE, IN_PROGRESS, "Stack UPDATE started")
            operations = self._operations
            self._submit(
                stack_id, lambda cancel: operations.update(stack_id, plan, previous, cancel)
            )

    def delete_stack(self, stack_id: str) -> None:
        """Delete every resource in reverse dependency order; cancels a running operation."""
        with self._cond:
            stack = self.get_stack(stack_id)
            if stack.state == "DELETE_COMPLETE":
                raise NotFound("Stack", stack_id)
            running = self._cancel.get(stack_id)
            if running is not None:
                running.set()
            operations = self._operations
            self._submit(stack_id, lambda cancel: operations.delete(stack_id, DELETE, cancel))

    def signal(self, stack_id: str, resource_name: str, details: Mapping[str, Any]) -> None:
        """Signal a resource (Heat's resource_signal), in the caller's thread: the plugin's
        `handle_signal` refuses (raises) or starts; `check_signal_complete` is polled to its
        end. A SIGNAL event is recorded; the resource's state does not change."""
        self.store.load_stack(stack_id)
        records = [
            r for r in self.store.load_resources(stack_id) if r.name == resource_name and r.current
        ]
        if not records:
            raise NotFound("Resource", resource_name)
        record = records[0]
        if record.action in (INIT, DELETE) or not record.physical_id:
            raise UnprocessableEntity(
                f"Resource {resource_name} is {record.state}: it cannot be signalled."
            )
        plugin = plugin_for(self.registry, record)
        handle = plugin.handle_signal(details)
        while not plugin.check_signal_complete(handle):
            time.sleep(self.poll_interval)
        current = [r for r in self.store.load_resources(stack_id) if r.id == record.id]
        if current and plugin.data != record.data:
            current[0].data = {**current[0].data, **plugin.data}
            self.store.save_resource(current[0])
        reason = str(details.get("reason") or "Signal received")
        self.store.add_event(
            stack_id, resource_name, record.physical_id, "SIGNAL", COMPLETE, reason
        )

    def is_running(self, stack_id: str) -> bool:
        """Whether this engine runs (or has queued) an operation on the stack: one it does
        not run, left IN_PROGRESS, was interrupted (`LocalStackService.take_over`)."""
        with self._cond:
            return stack_id in self._running

    def get_stack(self, stack_id: str) -> StackRecord:
        return self.store.load_stack(stack_id)

    def resources(self, stack_id: str) -> list[ResourceRecord]:
        self.store.load_stack(stack_id)
        return sorted(self.store.load_resources(stack_id), key=lambda r: (r.name, r.created_at))

    def events(self, stack_id: str) -> list[EventRecord]:
        self.store.load_stack(stack_id)
        return self.store.load_events(stack_id)

    def outputs(self, stack_id: str) -> dict[str, dict[str, Any]]:
        """Every output resolved now: {name: {value, description[, error]}}."""
        stack = self.get_stack(stack_id)
        template = parse_template(stack.template)
        params = template.resolve_parameters(stack.parameters, drop_unknown=True)
        records = {r.name: r for r in self.store.load_resources(stack_id) if r.current}
        context = Context(stack, params, records, self.registry)
        result: dict[str, dict[str, Any]] = {}
        for name, output in template.outputs.items():
            entry: dict[str, Any] = {"description": output.description}
            try:
                entry["value"] = functions.resolve(output.value, context)
            except Exception as exc:
                entry["value"] = None
                entry["error"] = str(exc)
            result[name] = entry
        return result

    def wait(self, stack_id: str, timeout: float = 60.0) -> StackRecord:
        """The stack once no operation runs on it; TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while stack_id in self._running:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"stack {stack_id} still in progress")
                self._cond.wait(left)
        return self.get_stack(stack_id)

    # Validation --------------------------------------------------------------------------

    def _plan(
        self, raw: Mapping[str, Any], parameters: Mapping[str, Any], *, drop_unknown: bool
    ) -> Plan:
        return make_plan(self.registry, raw, parameters, drop_unknown=drop_unknown)

    # Running operations ------------------------------------------------------------------

    def _submit(self, stack_id: str, operation: Callable[[threading.Event], None]) -> None:
        """Run `operation` on the pool after the stack's running one (if any) has ended."""
        with self._cond:
            previous = self._running.get(stack_id)
            cancel = threading.Event()

            def job() -> None:
                try:
                    if previous is not None:
                        previous.exception()  # wait for it; its errors are its own
                    operation(cancel)
                except Exception as exc:
                    LOG.exception("stack %s: operation failed", stack_id)
                    stack = self.store.load_stack(stack_id)
                    reason = f"Internal error: {exc}"
                    set_stack_state(self.store, stack, stack.action, FAILED, reason)
                finally:
                    with self._cond:
                        if self._running.get(stack_id) is future:
                            del self._running[stack_id]
                            del self._cancel[stack_id]
                        self._cond.notify_all()

            future: Future[None] = self._pool.submit(job)
            self._running[stack_id] = future
            self._cancel[stack_id] = cancel
