"""The embedded stack engine's store in the database: `DbStackStore`.

It implements `cellar.orchestration.local.store.StackStore` structurally (the engine must
not import cellar.db) and returns the same records as `MemoryStore`. Every method is one
short transaction of its own, so the engine's threads may call it concurrently.

`fail_interrupted_stacks` is what a process calls on a store before it starts an engine on
it: the operations a dead engine left ``*_IN_PROGRESS`` can no longer end by themselves,
so they are failed explicitly (and can then be updated or deleted again).
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from sqlalchemy import Engine, delete, insert, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from cellar.db.engine import make_session_factory, transaction
from cellar.db.models import Base, Stack, StackEvent, StackResource
from cellar.domain.errors import NotFound
from cellar.orchestration.local.store import (
    EventRecord,
    ResourceRecord,
    StackRecord,
    StackStore,
    now,
)

INTERRUPTED = "the engine restarted during the operation"


def _to_db(value: datetime.datetime) -> datetime.datetime:
    """Naive UTC, as every timestamp column is stored."""
    if value.tzinfo is None:
        return value
    return value.astimezone(datetime.UTC).replace(tzinfo=None)


def _from_db(value: datetime.datetime) -> datetime.datetime:
    return value.replace(tzinfo=datetime.UTC)


def _json_default(value: Any) -> Any:
    # A YAML template's heat_template_version may be a date; the parser takes its string.
    if isinstance(value, datetime.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _jsonable(value: Any) -> Any:
    """`value` as a JSON column gives it back (fails on what JSON cannot hold)."""
    return json.loads(json.dumps(value, default=_json_default))


def _upsert(session: Session, model: type[Base], values: dict[str, Any]) -> None:
    """Insert the row, or update every column of the row with its primary key."""
    mapper = inspect(model)
    table = mapper.local_table
    keys = [column.name for column in mapper.primary_key]
    changes = {k: v for k, v in values.items() if k not in keys}
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        module: Any = sqlite if dialect == "sqlite" else postgresql
        statement = module.insert(table).values(**values)
        session.execute(statement.on_conflict_do_update(index_elements=keys, set_=changes))
        return
    session.merge(model(**values))


class DbStackStore:
    """A `StackStore` in the database; safe to use from several threads."""

    def __init__(self, bind: Engine | sessionmaker[Session]) -> None:
        self._factory = make_session_factory(bind) if isinstance(bind, Engine) else bind

    # Stacks ------------------------------------------------------------------------------

    def save_stack(self, stack: StackRecord) -> None:
        values = {
            "id": stack.id,
            "name": stack.name,
            "template": _jsonable(stack.template),
            "parameters": _jsonable(stack.parameters),
            "action": stack.action,
            "status": stack.status,
            "status_reason": stack.status_reason,
            "disable_rollback": stack.disable_rollback,
            "created": _to_db(stack.created_at),
            "updated": _to_db(stack.updated_at),
        }
        with transaction(self._factory) as session:
            _upsert(session, Stack, values)

    def load_stack(self, stack_id: str) -> StackRecord:
        with transaction(self._factory, readonly=True) as session:
            row = session.get(Stack, stack_id)
            if row is None:
                raise NotFound("Stack", stack_id)
            return _stack(row)

    def list_stacks(self) -> list[StackRecord]:
        with transaction(self._factory, readonly=True) as session:
            rows = session.scalars(select(Stack).order_by(Stack.created, Stack.id))
            return [_stack(row) for row in rows]

    # Resources ---------------------------------------------------------------------------

    def save_resource(self, resource: ResourceRecord) -> None:
        values = {
            "stack_id": resource.stack_id,
            "id": resource.id,
            "name": resource.name,
            "type": resource.type,
            "physical_id": resource.physical_id,
            "action": resource.action,
            "status": resource.status,
            "status_reason": resource.status_reason,
            "properties": _jsonable(resource.properties),
            "data": _jsonable(resource.data),
            "requires": list(resource.requires),
            "current": resource.current,
            "created": _to_db(resource.created_at),
            "updated": _to_db(resource.updated_at),
        }
        with transaction(self._factory) as session:
            _upsert(session, StackResource, values)

    def delete_resource(self, stack_id: str, record_id: str) -> None:
        with transaction(self._factory) as session:
            session.execute(
                delete(StackResource).where(
                    StackResource.stack_id == stack_id, StackResource.id == record_id
                )
            )

    def load_resources(self, stack_id: str) -> list[ResourceRecord]:
        with transaction(self._factory, readonly=True) as session:
            rows = session.scalars(
                select(StackResource)
                .where(StackResource.stack_id == stack_id)
                .order_by(StackResource.created, StackResource.id)
            )
            return [_resource(row) for row in rows]

    # Events ------------------------------------------------------------------------------

    def add_event(
        self,
        stack_id: str,
        resource_name: str,
        physical_resource_id: str,
        action: str,
        status: str,
        reason: str,
    ) -> EventRecord:
        timestamp = now()
        values = {
            "stack_id": stack_id,
            "resource_name": resource_name,
            "physical_resource_id": physical_resource_id,
            "action": action,
            "status": status,
            "reason": reason,
        }
        with transaction(self._factory) as session:
            event_id = session.execute(
                insert(StackEvent)
                .values(timestamp=_to_db(timestamp), **values)
                .returning(StackEvent.id)
            ).scalar_one()
        return EventRecord(id=event_id, timestamp=timestamp, **values)

    def load_events(self, stack_id: str) -> list[EventRecord]:
        with transaction(self._factory, readonly=True) as session:
            rows = session.scalars(
                select(StackEvent).where(StackEvent.stack_id == stack_id).order_by(StackEvent.id)
            )
            return [_event(row) for row in rows]


def _stack(row: Stack) -> StackRecord:
    return StackRecord(
        id=row.id,
        name=row.name,
        template=dict(row.template),
        parameters=dict(row.parameters),
        action=row.action,
        status=row.status,
        status_reason=row.status_reason,
        disable_rollback=row.disable_rollback,
        created_at=_from_db(row.created),
        updated_at=_from_db(row.updated),
    )


def _resource(row: StackResource) -> ResourceRecord:
    return ResourceRecord(
        id=row.id,
        stack_id=row.stack_id,
        name=row.name,
        type=row.type,
        physical_id=row.physical_id,
        action=row.action,
        status=row.status,
        status_reason=row.status_reason,
        properties=dict(row.properties),
        data=dict(row.data),
        requires=list(row.requires),
        current=row.current,
        created_at=_from_db(row.created),
        updated_at=_from_db(row.updated),
    )


def _event(row: StackEvent) -> EventRecord:
    return EventRecord(
        id=row.id,
        stack_id=row.stack_id,
        resource_name=row.resource_name,
        physical_resource_id=row.physical_resource_id,
        action=row.action,
        status=row.status,
        reason=row.reason,
        timestamp=_from_db(row.timestamp),
    )


def fail_interrupted_stacks(store: StackStore, reason: str = INTERRUPTED) -> list[str]:
    """Fail every stack (and resource) left IN_PROGRESS; the ids of the stacks failed.

    Call it before an engine starts on `store`, and only when no other engine runs on
    the same store: a live engine's operations would be failed too. Each change gets its
    event, as the engine's own state changes do.
    """
    failed: list[str] = []
    for stack in store.list_stacks():
        if stack.status != "IN_PROGRESS":
            continue
        for record in store.load_resources(stack.id):
            if record.status != "IN_PROGRESS":
                continue
            record.status, record.status_reason, record.updated_at = "FAILED", reason, now()
            store.save_resource(record)
            store.add_event(
                stack.id, record.name, record.physical_id, record.action, "FAILED", reason
            )
        stack.status, stack.status_reason, stack.updated_at = "FAILED", reason, now()
        store.save_stack(stack)
        store.add_event(stack.id, stack.name, stack.id, stack.action, "FAILED", reason)
        failed.append(stack.id)
    return failed
