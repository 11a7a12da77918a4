"""The embedded stack engine: Heat's create, update and delete semantics on local plugins.

Operations are asynchronous, as Heat's API is: `create_stack`, `update_stack` and
`delete_stack` validate their input at once (a `TemplateError` or a `cellar.domain.errors`
error before anything is created), save the stack as ``*_IN_PROGRESS`` and return; the work
runs on a thread of the engine's pool (`max_workers` stack operations at once). `wait()`
blocks until the stack's operation has ended and returns the stack record.

Inside an operation, one thread drives the dependency graph like Heat's task scheduler:
every resource whose requirements are COMPLETE is started (`handle_*`), and the started
ones are polled (`check_*_complete`) until they finish, so independent resources run
concurrently while no plugin call blocks. On the first failure no new resource is started;
those already running are polled to their end.

Not done (yet): update rollback (a failed update ends UPDATE_FAILED, as with Heat's
``disable_rollback=True``), wait conditions and signals, suspend/resume/check, timeouts,
deletion policies, immutable parameters, conditions.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cellar.domain.errors import Conflict, NotFound, UnprocessableEntity
from cellar.orchestration.local import functions
from cellar.orchestration.local.resources import Registry, Resource, default_registry
from cellar.orchestration.local.store import (
    EventRecord,
    ResourceRecord,
    StackRecord,
    StackStore,
    now,
)
from cellar.orchestration.local.template import Template, TemplateError, parse_template

LOG = logging.getLogger(__name__)

INIT, CREATE, UPDATE, DELETE, ROLLBACK = "INIT", "CREATE", "UPDATE", "DELETE", "ROLLBACK"
IN_PROGRESS, COMPLETE, FAILED = "IN_PROGRESS", "COMPLETE", "FAILED"
STACK_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9_.-]{0,254}")
# get_attr gives None unless the resource's action is one of these (heat/engine/resource.py)
ATTRIBUTE_ACTIONS = frozenset(
    {CREATE, UPDATE, ROLLBACK, "ADOPT", "SUSPEND", "RESUME", "SNAPSHOT", "CHECK"}
)


@dataclass
class _Task:
    start: Callable[[], Callable[[], bool]]  # starts the action, returns its poll
    fail: Callable[[BaseException], str]  # records the failure, returns the reason
    requires: set[str] = field(default_factory=set)


@dataclass
class _Plan:
    template: Template
    params: dict[str, Any]
    graph: dict[str, frozenset[str]]


class _Context:
    """Resolution against the live records of one stack."""

    def __init__(
        self,
        stack: StackRecord,
        params: Mapping[str, Any],
        records: Mapping[str, ResourceRecord],
        registry: Registry,
    ) -> None:
        self.stack, self.params, self.records, self.registry = stack, params, records, registry

    def param(self, name: str) -> Any:
        if name == "OS::stack_name":
            return self.stack.name
        if name == "OS::stack_id":
            return self.stack.id
        if name == "OS::project_id":
            return ""
        if name not in self.params:
            raise TemplateError(f"parameters.{name}", "no value")
        return self.params[name]

    def resource_ref(self, name: str) -> Any:
        record = self.records.get(name)
        return record.physical_id if record is not None and record.physical_id else name

    def resource_attr(self, name: str, attribute: str | None) -> Any:
        record = self.records.get(name)
        if record is None or record.action not in ATTRIBUTE_ACTIONS:
            return None
        plugin = _plugin(self.registry, record)
        return plugin.attributes() if attribute is None else plugin.get_attribute(attribute)


def _plugin(registry: Registry, record: ResourceRecord) -> Resource:
    cls = registry.get(record.type, f"resources.{record.name}.type")
    return _make(cls, record, record.properties)


def _make(cls: type[Resource], record: ResourceRecord, properties: Mapping[str, Any]) -> Resource:
    plugin = cls(record.name, properties, record.physical_id, dict(record.data))
    plugin.stack_id = record.stack_id
    return plugin


def _reason(name: str, exc: BaseException) -> str:
    if isinstance(exc, TemplateError):
        return f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: resources.{name}: {exc}"


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
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="stack")
        self._cond = threading.Condition()
        self._running: dict[str, Future[None]] = {}
        self._cancel: dict[str, threading.Event] = {}

    def close(self) -> None:
        """Cancel running operations and wait for the pool to stop."""
        with self._cond:
            for event in self._cancel.values():
                event.set()
        self._pool.shutdown(wait=True)

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
        self._submit(stack.id, lambda cancel: self._do_create(stack.id, plan, cancel))
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
            stack.template = raw
            stack.parameters = {k: v for k, v in merged.items() if k in plan.template.parameters}
            self._set_stack(stack, UPDATE, IN_PROGRESS, "Stack UPDATE started")
            self._submit(stack_id, lambda cancel: self._do_update(stack_id, plan, cancel))

    def delete_stack(self, stack_id: str) -> None:
        """Delete every resource in reverse dependency order; cancels a running operation."""
        with self._cond:
            stack = self.get_stack(stack_id)
            if stack.state == "DELETE_COMPLETE":
                raise NotFound("Stack", stack_id)
            running = self._cancel.get(stack_id)
            if running is not None:
                running.set()
            self._submit(stack_id, lambda cancel: self._do_delete(stack_id, DELETE, cancel))

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
        plugin = _plugin(self.registry, record)
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
        context = _Context(stack, params, records, self.registry)
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
    ) -> _Plan:
        template = parse_template(raw)
        params = template.resolve_parameters(parameters, drop_unknown=drop_unknown)
        classes: dict[str, type[Resource]] = {}
        for name, definition in template.resources.items():
            where = f"resources.{name}"
            cls = self.registry.get(definition.type, f"{where}.type")
            cls.check_names(definition.properties, f"{where}.properties")
            classes[name] = cls

        def check_attribute(resource: str, attribute: str) -> str | None:
            return classes[resource].check_attribute(attribute)

        for name, definition in template.resources.items():
            where = f"resources.{name}"
            functions.validate(
                definition.properties, f"{where}.properties", template, check_attribute
            )
            functions.validate(definition.metadata, f"{where}.metadata", template, check_attribute)
        for name, output in template.outputs.items():
            functions.validate(output.value, f"outputs.{name}.value", template, check_attribute)
        graph = functions.dependencies(template)
        functions.check_acyclic(graph)
        return _Plan(template, params, graph)

    # Operations --------------------------------------------------------------------------

    def _submit(self, stack_id: str, operation: Callable[[threading.Event], None]) -> None:
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
                    self._set_stack(stack, stack.action, FAILED, f"Internal error: {exc}")
                finally:
                    with self._cond:
                        if self._running.get(stack_id) is future:
                            del self._running[stack_id]
                            del self._cancel[stack_id]
                        self._cond.notify_all()

            future: Future[None] = self._pool.submit(job)
            self._running[stack_id] = future
            self._cancel[stack_id] = cancel

    def _set_stack(self, stack: StackRecord, action: str, status: str, reason: str) -> None:
        stack.action, stack.status, stack.status_reason = action, status, reason
        stack.updated_at = now()
        self.store.save_stack(stack)
        self.store.add_event(stack.id, stack.name, stack.id, action, status, reason)

    def _set(self, record: ResourceRecord, action: str, status: str, reason: str) -> None:
        record.action, record.status, record.status_reason = action, status, reason
        record.updated_at = now()
        self.store.save_resource(record)
        self.store.add_event(
            record.stack_id, record.name, record.physical_id, action, status, reason
        )

    def _run(self, tasks: Mapping[str, _Task], cancel: threading.Event) -> list[str]:
        """Run `tasks` in dependency order, concurrently; the failure reasons."""
        waiting = {key: task.requires & tasks.keys() for key, task in tasks.items()}
        dependents: dict[str, list[str]] = defaultdict(list)
        for key, needed in waiting.items():
            for other in needed:
                dependents[other].append(key)
        ready = deque(key for key, needed in waiting.items() if not needed)
        running: dict[str, Callable[[], bool]] = {}
        failures: list[str] = []
        while ready or running:
            if cancel.is_set():
                for key in running:
                    failures.append(tasks[key].fail(RuntimeError("Operation cancelled")))
                return failures or ["Operation cancelled"]
            if failures:
                ready.clear()
            while ready:
                key = ready.popleft()
                try:
                    running[key] = tasks[key].start()
                except Exception as exc:
                    failures.append(tasks[key].fail(exc))
                    ready.clear()
            progressed = False
            for key, poll in list(running.items()):
                try:
                    done = poll()
                except Exception as exc:
                    del running[key]
                    failures.append(tasks[key].fail(exc))
                    continue
                if done:
                    del running[key]
                    progressed = True
                    for other in dependents[key]:
                        waiting[other].discard(key)
                        if not waiting[other] and not failures:
                            ready.append(other)
            if running and not ready and not progressed:
                time.sleep(self.poll_interval)
        return failures

    # Create ------------------------------------------------------------------------------

    def _create_task(
        self, record: ResourceRecord, plan: _Plan, context: _Context, requires: set[str]
    ) -> _Task:
        definition = plan.template.resources[record.name]
        cls = self.registry.get(definition.type, f"resources.{record.name}.type")

        def start() -> Callable[[], bool]:
            where = f"resources.{record.name}.properties"
            properties = cls.complete(functions.resolve(definition.properties, context), where)
            record.properties = properties
            record.requires = sorted(plan.graph[record.name])
            record.physical_id = str(uuid.uuid4())
            self._set(record, CREATE, IN_PROGRESS, "state changed")
            plugin = _make(cls, record, properties)
            handle = plugin.handle_create()
            if plugin.physical_id != record.physical_id:  # the cloud's id, for get_resource
                record.physical_id, record.data = plugin.physical_id, plugin.data
                self.store.save_resource(record)

            def poll() -> bool:
                if not plugin.check_create_complete(handle):
                    return False
                record.data = plugin.data
                self._set(record, CREATE, COMPLETE, "state changed")
                return True

            return poll

        def fail(exc: BaseException) -> str:
            reason = _reason(record.name, exc)
            self._set(record, CREATE, FAILED, reason)
            return reason

        return _Task(start, fail, requires)

    def _do_create(self, stack_id: str, plan: _Plan, cancel: threading.Event) -> None:
        stack = self.store.load_stack(stack_id)
        records = {r.name: r for r in self.store.load_resources(stack_id)}
        context = _Context(stack, plan.params, records, self.registry)
        tasks = {
            name: self._create_task(records[name], plan, context, set(plan.graph[name]))
            for name in plan.template.resources
        }
        failures = self._run(tasks, cancel)
        if not failures:
            self._set_stack(stack, CREATE, COMPLETE, "Stack CREATE completed successfully")
            return
        reason = f"Resource CREATE failed: {failures[0]}"
        if stack.disable_rollback or cancel.is_set():
            self._set_stack(stack, CREATE, FAILED, reason)
            return
        self._set_stack(stack, CREATE, FAILED, reason)
        self._do_delete(stack_id, ROLLBACK, cancel)

    # Update ------------------------------------------------------------------------------

    def _do_update(self, stack_id: str, plan: _Plan, cancel: threading.Event) -> None:
        stack = self.store.load_stack(stack_id)
        all_records = self.store.load_resources(stack_id)
        records = {r.name: r for r in all_records if r.current}
        context = _Context(stack, plan.params, records, self.registry)
        tasks = {
            name: self._update_task(name, plan, context, records)
            for name in plan.template.resources
        }
        failures = self._run(tasks, cancel)
        if failures:
            self._set_stack(stack, UPDATE, FAILED, f"Resource UPDATE failed: {failures[0]}")
            return
        # Clean up: the old halves of replacements, and the resources no longer in the
        # template, in reverse dependency order.
        leftovers = [
            r
            for r in self.store.load_resources(stack_id)
            if not r.current or r.name not in plan.template.resources
        ]
        failures = self._run(self._delete_tasks(leftovers, DELETE), cancel)
        if failures:
            self._set_stack(stack, UPDATE, FAILED, f"Resource DELETE failed: {failures[0]}")
            return
        self._set_stack(stack, UPDATE, COMPLETE, "Stack UPDATE completed successfully")

    def _update_task(
        self, name: str, plan: _Plan, context: _Context, records: dict[str, ResourceRecord]
    ) -> _Task:
        definition = plan.template.resources[name]
        cls = self.registry.get(definition.type, f"resources.{name}.type")
        requires = set(plan.graph[name])
        existing = records.get(name)
        if existing is None or existing.state == "INIT_COMPLETE":
            record = existing or ResourceRecord(
                id=str(uuid.uuid4()),
                stack_id=context.stack.id,
                name=name,
                type=definition.type,
                physical_id="",
                action=INIT,
                status=COMPLETE,
            )
            records[name] = record
            return self._create_task(record, plan, context, requires)
        old: ResourceRecord = existing
        holder: dict[str, _Task] = {}

        def start() -> Callable[[], bool]:
            where = f"resources.{name}.properties"
            properties = cls.complete(functions.resolve(definition.properties, context), where)
            replace = (
                old.type != definition.type or old.status == FAILED or old.action in (INIT, DELETE)
            )
            changed = {
                key
                for key in set(properties) | set(old.properties)
                if properties.get(key) != old.properties.get(key)
            }
            if not replace and (cls.never_update or not changed):
                old.properties = properties if cls.never_update else old.properties
                old.requires = sorted(plan.graph[name])
                self.store.save_resource(old)
                return lambda: True
            if replace or cls.needs_replace(changed, properties, old.properties):
                old.current = False
                self.store.save_resource(old)
                new = ResourceRecord(
                    id=str(uuid.uuid4()),
                    stack_id=old.stack_id,
                    name=name,
                    type=definition.type,
                    physical_id="",
                    action=INIT,
                    status=COMPLETE,
                )
                records[name] = new
                holder["create"] = self._create_task(new, plan, context, requires)
                return holder["create"].start()
            self._set(old, UPDATE, IN_PROGRESS, "state changed")
            plugin = _make(cls, old, old.properties)
            handle = plugin.handle_update(properties, changed)

            def poll() -> bool:
                if not plugin.check_update_complete(handle):
                    return False
                old.properties, old.data = plugin.properties, plugin.data
                old.requires = sorted(plan.graph[name])
                self._set(old, UPDATE, COMPLETE, "state changed")
                return True

            return poll

        def fail(exc: BaseException) -> str:
            if "create" in holder:
                return holder["create"].fail(exc)
            reason = _reason(name, exc)
            self._set(old, UPDATE, FAILED, reason)
            return reason

        return _Task(start, fail, requires)

    # Delete ------------------------------------------------------------------------------

    def _delete_tasks(self, records: list[ResourceRecord], action: str) -> dict[str, _Task]:
        """Delete `records`: a record goes only after every record that requires it."""
        by_name: dict[str, list[ResourceRecord]] = defaultdict(list)
        for record in records:
            by_name[record.name].append(record)
        tasks: dict[str, _Task] = {}
        for record in records:
            tasks[record.id] = self._delete_task(record)
        for record in records:
            for needed in record.requires:
                for target in by_name.get(needed, []):
                    tasks[target.id].requires.add(record.id)
        # An old half of a replacement goes before anything its successor needed.
        return tasks

    def _delete_task(self, record: ResourceRecord) -> _Task:
        def start() -> Callable[[], bool]:
            if record.action == INIT or not record.physical_id:
                self.store.delete_resource(record.stack_id, record.id)
                return lambda: True
            self._set(record, DELETE, IN_PROGRESS, "state changed")
            plugin = _plugin(self.registry, record)
            handle = plugin.handle_delete()

            def poll() -> bool:
                if not plugin.check_delete_complete(handle):
                    return False
                self._set(record, DELETE, COMPLETE, "state changed")
                self.store.delete_resource(record.stack_id, record.id)
                return True

            return poll

        def fail(exc: BaseException) -> str:
            reason = _reason(record.name, exc)
            self._set(record, DELETE, FAILED, reason)
            return reason

        return _Task(start, fail)

    def _do_delete(self, stack_id: str, action: str, cancel: threading.Event) -> None:
        stack = self.store.load_stack(stack_id)
        self._set_stack(stack, action, IN_PROGRESS, f"Stack {action} started")
        records = self.store.load_resources(stack_id)
        # A delete runs to its end even if it was itself asked to stop.
        failures = self._run(self._delete_tasks(records, action), threading.Event())
        if failures:
            self._set_stack(stack, action, FAILED, f"Resource DELETE failed: {failures[0]}")
        else:
            self._set_stack(stack, action, COMPLETE, f"Stack {action} completed successfully")
