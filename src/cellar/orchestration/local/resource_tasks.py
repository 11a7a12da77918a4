"""The per-resource tasks of an operation: create, update (in place or by replacement) and
delete one resource, as start/poll pairs for the scheduler (`scheduler.Task`).

Each task records its resource's state changes (and their events) as they happen.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from cellar.orchestration.local import functions
from cellar.orchestration.local.context import (
    Context,
    Plan,
    failure_reason,
    make_plugin,
    plugin_for,
)
from cellar.orchestration.local.resources import Registry, Resource
from cellar.orchestration.local.scheduler import Task
from cellar.orchestration.local.states import (
    COMPLETE,
    CREATE,
    DELETE,
    FAILED,
    IN_PROGRESS,
    INIT,
    UPDATE,
    set_resource_state,
)
from cellar.orchestration.local.store import ResourceRecord, StackStore

KEEP, IN_PLACE, REPLACE = "keep", "in place", "replace"
KEPT_AFTER_FAILURE = "Update status to COMPLETE for FAILED resource neither update nor replace."


def _update_kind(
    cls: type[Resource],
    old: ResourceRecord,
    new_type: str,
    properties: Mapping[str, Any],
    changed: set[str],
) -> str:
    """How `old` meets its new definition, in the order of Heat's `Resource._needs_update`:
    KEEP it as it is, update it IN_PLACE, or REPLACE it (create the new one, then delete
    the old one). A FAILED resource is replaced only if its plugin says so
    (`needs_replace_failed`): a database server whose record an interrupted action failed
    is still the database, and must be kept."""
    if old.type != new_type or old.action in (INIT, DELETE):
        return REPLACE
    if cls.never_update:
        return KEEP
    if old.status == FAILED and make_plugin(cls, old, old.properties).needs_replace_failed():
        return REPLACE
    if not changed:
        return KEEP
    return REPLACE if cls.needs_replace(changed, properties, old.properties) else IN_PLACE


class ResourceTasks:
    """Builds the tasks of one stack operation over `store`, with `registry`'s plugins."""

    def __init__(self, store: StackStore, registry: Registry) -> None:
        self.store, self.registry = store, registry

    def _set(self, record: ResourceRecord, action: str, status: str, reason: str) -> None:
        set_resource_state(self.store, record, action, status, reason)

    # Create ------------------------------------------------------------------------------

    def create_task(
        self, record: ResourceRecord, plan: Plan, context: Context, requires: set[str]
    ) -> Task:
        definition = plan.template.resources[record.name]
        cls = self.registry.get(definition.type, f"resources.{record.name}.type")

        def start() -> Callable[[], bool]:
            where = f"resources.{record.name}.properties"
            properties = cls.complete(functions.resolve(definition.properties, context), where)
            record.properties = properties
            record.requires = sorted(plan.graph[record.name])
            record.physical_id = str(uuid.uuid4())
            self._set(record, CREATE, IN_PROGRESS, "state changed")
            plugin = make_plugin(cls, record, properties)
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
            reason = failure_reason(record.name, exc)
            self._set(record, CREATE, FAILED, reason)
            return reason

        return Task(start, fail, requires)

    # Update ------------------------------------------------------------------------------

    def update_task(
        self, name: str, plan: Plan, context: Context, records: dict[str, ResourceRecord]
    ) -> Task:
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
            return self.create_task(record, plan, context, requires)
        old: ResourceRecord = existing
        holder: dict[str, Task] = {}

        def start() -> Callable[[], bool]:
            where = f"resources.{name}.properties"
            properties = cls.complete(functions.resolve(definition.properties, context), where)
            changed = {
                key
                for key in set(properties) | set(old.properties)
                if properties.get(key) != old.properties.get(key)
            }
            kind = _update_kind(cls, old, definition.type, properties, changed)
            if kind == KEEP:
                self._keep(old, properties if cls.never_update else old.properties, plan)
                return lambda: True
            if kind == REPLACE:
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
                holder["create"] = self.create_task(new, plan, context, requires)
                return holder["create"].start()
            self._set(old, UPDATE, IN_PROGRESS, "state changed")
            plugin = make_plugin(cls, old, old.properties)
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
            reason = failure_reason(name, exc)
            self._set(old, UPDATE, FAILED, reason)
            return reason

        return Task(start, fail, requires)

    def _keep(self, old: ResourceRecord, properties: dict[str, Any], plan: Plan) -> None:
        """Leave `old` as it is; a FAILED one becomes COMPLETE under its own action, as
        Heat's `_persist_update_no_change` does (the failure left nothing to redo)."""
        old.properties = properties
        old.requires = sorted(plan.graph[old.name])
        if old.status == FAILED:
            self._set(old, old.action, COMPLETE, KEPT_AFTER_FAILURE)
        else:
            self.store.save_resource(old)

    # Delete ------------------------------------------------------------------------------

    def delete_tasks(self, records: list[ResourceRecord]) -> dict[str, Task]:
        """Delete `records`: a record goes only after every record that requires it."""
        by_name: dict[str, list[ResourceRecord]] = defaultdict(list)
        for record in records:
            by_name[record.name].append(record)
        tasks: dict[str, Task] = {}
        for record in records:
            tasks[record.id] = self.delete_task(record)
        for record in records:
            for needed in record.requires:
                for target in by_name.get(needed, []):
                    tasks[target.id].requires.add(record.id)
        # An old half of a replacement goes before anything its successor needed.
        return tasks

    def delete_task(self, record: ResourceRecord) -> Task:
        def start() -> Callable[[], bool]:
            if record.action == INIT or not record.physical_id:
                self.store.delete_resource(record.stack_id, record.id)
                return lambda: True
            self._set(record, DELETE, IN_PROGRESS, "state changed")
            plugin = plugin_for(self.registry, record)
            handle = plugin.handle_delete()

            def poll() -> bool:
                if not plugin.check_delete_complete(handle):
                    return False
                self._set(record, DELETE, COMPLETE, "state changed")
                self.store.delete_resource(record.stack_id, record.id)
                return True

            return poll

        def fail(exc: BaseException) -> str:
            reason = failure_reason(record.name, exc)
            self._set(record, DELETE, FAILED, reason)
            return reason

        return Task(start, fail)
