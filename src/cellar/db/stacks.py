"""The embedded stack engine's store in the database: `DbStackStore`.

It implements `cellar.orchestration.local.store.StackStore` structurally (the engine must
not import cellar.db) and returns the same records as `MemoryStore`. Every method is one
short transaction of its own, so the engine's threads may call it concurrently.

`fail_interrupted_stacks` fails what dead engines left ``*_IN_PROGRESS`` on a store no
engine runs on: such operations can no longer end by themselves.

As Heat does with `encrypt_parameters_and_properties`, a store given the deployment's
secret key (`secret_key_path`) keeps the values of a stack's hidden parameters (the
guest's secret) and every resource's resolved properties (where those values end up, in
a server's user data) sealed at rest (`cellar.db.sealing`); the records it returns hold
them opened. Without a key (tests' throwaway stores) they are kept as given.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, insert, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from cellar.db.engine import make_session_factory, transaction
from cellar.db.models import Base, Stack, StackEvent, StackResource, StackSignal
from cellar.db.sealing import seal, unseal
from cellar.domain.errors import NotFound
from cellar.orchestration.local.cloud_base import stored_signal
from cellar.orchestration.local.store import (
    EventRecord,
    ResourceRecord,
    StackRecord,
    StackStore,
    fail_interrupted,
    now,
)


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


SEALED = "$sealed"  # a value kept sealed: {"$sealed": "<Fernet token>"}


def hidden_parameters(template: Mapping[str, Any]) -> set[str]:
    """The names of the template's parameters declared `hidden: true`."""
    declared = template.get("parameters") or {}
    return {n for n, p in declared.items() if isinstance(p, Mapping) and p.get("hidden")}


class _Sealer:
    def __init__(self, key_path: Path | None) -> None:
        self.key_path = key_path

    def seal(self, value: Any) -> Any:
        if self.key_path is None:
            return value
        return {SEALED: seal(self.key_path, {"value": value})}

    def open(self, value: Any) -> Any:
        if self.key_path is None or not (isinstance(value, dict) and set(value) == {SEALED}):
            return value
        return unseal(self.key_path, value[SEALED])["value"]


class DbStackStore:
    """A `StackStore` in the database; safe to use from several threads."""

    def __init__(
        self, bind: Engine | sessionmaker[Session], *, secret_key_path: Path | None = None
    ) -> None:
        self._factory = make_session_factory(bind) if isinstance(bind, Engine) else bind
        self._sealer = _Sealer(secret_key_path)

    # Stacks ------------------------------------------------------------------------------

    def save_stack(self, stack: StackRecord) -> None:
        hidden = hidden_parameters(stack.template)
        parameters = {
            name: self._sealer.seal(value) if name in hidden else value
            for name, value in _jsonable(stack.parameters).items()
        }
        values = {
            "id": stack.id,
            "name": stack.name,
            "template": _jsonable(stack.template),
            "parameters": parameters,
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
            return _stack(row, self._sealer)

    def list_stacks(self) -> list[StackRecord]:
        with transaction(self._factory, readonly=True) as session:
            rows = session.scalars(select(Stack).order_by(Stack.created, Stack.id))
            return [_stack(row, self._sealer) for row in rows]

    def find_stacks(self, name: str) -> list[StackRecord]:
        with transaction(self._factory, readonly=True) as session:
            query = select(Stack).where(Stack.name == name).order_by(Stack.created, Stack.id)
            return [_stack(row, self._sealer) for row in session.scalars(query)]

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
            "properties": self._sealer.seal(_jsonable(resource.properties)),
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
            return [_resource(row, self._sealer) for row in rows]

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


def current_resource(session: Session, stack_id: str, name: str) -> ResourceRecord:
    """The current record of a live stack's resource `name` (its properties left as
    stored, sealed or not: for its state and data); NotFound names the stack or the
    resource."""
    stack = session.get(Stack, stack_id)
    if stack is None or (stack.action, stack.status) == ("DELETE", "COMPLETE"):
        raise NotFound("Stack", stack_id)
    row = session.scalars(
        select(StackResource).where(
            StackResource.stack_id == stack_id,
            StackResource.name == name,
            StackResource.current.is_(True),
        )
    ).first()
    if row is None:
        raise NotFound("Resource", name)
    return _resource(row, _Sealer(None))


class DbSignalStore:
    """A `SignalStore` (`cellar.orchestration.local.cloud_base`) in the database: the API
    adds the signals agents POST with their handle's token, the engine of the task manager
    reads them while its wait conditions poll."""

    def __init__(self, bind: Engine | sessionmaker[Session]) -> None:
        self._factory = make_session_factory(bind) if isinstance(bind, Engine) else bind

    def add(self, handle_id: str, signal: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        with transaction(self._factory) as session:
            rows = _signal_rows(session, handle_id)
            number = len(rows) + 1
            signal_id = str(signal.get("id") or number)
            values = stored_signal(signal, number)
            values["data"] = _jsonable(values["data"])
            existing = next((row for row in rows if row.signal_id == signal_id), None)
            if existing is None:
                session.add(
                    StackSignal(
                        handle_id=handle_id,
                        signal_id=signal_id,
                        created=_to_db(now()),
                        **values,
                    )
                )
            else:
                existing.status, existing.reason = values["status"], values["reason"]
                existing.data = values["data"]
            session.flush()
            return {row.signal_id: _signal(row) for row in _signal_rows(session, handle_id)}

    def get(self, handle_id: str) -> list[dict[str, Any]]:
        with transaction(self._factory, readonly=True) as session:
            return [_signal(row) for row in _signal_rows(session, handle_id)]

    def drop(self, handle_id: str) -> None:
        with transaction(self._factory) as session:
            session.execute(delete(StackSignal).where(StackSignal.handle_id == handle_id))


def _signal_rows(session: Session, handle_id: str) -> list[StackSignal]:
    query = select(StackSignal).where(StackSignal.handle_id == handle_id).order_by(StackSignal.id)
    return list(session.scalars(query))


def _signal(row: StackSignal) -> dict[str, Any]:
    return {"status": row.status, "reason": row.reason, "data": row.data}


def _stack(row: Stack, sealer: _Sealer) -> StackRecord:
    return StackRecord(
        id=row.id,
        name=row.name,
        template=dict(row.template),
        parameters={name: sealer.open(value) for name, value in row.parameters.items()},
        action=row.action,
        status=row.status,
        status_reason=row.status_reason,
        disable_rollback=row.disable_rollback,
        created_at=_from_db(row.created),
        updated_at=_from_db(row.updated),
    )


def _resource(row: StackResource, sealer: _Sealer) -> ResourceRecord:
    return ResourceRecord(
        id=row.id,
        stack_id=row.stack_id,
        name=row.name,
        type=row.type,
        physical_id=row.physical_id,
        action=row.action,
        status=row.status,
        status_reason=row.status_reason,
        properties=dict(sealer.open(row.properties)),
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


def fail_interrupted_stacks(store: StackStore) -> list[str]:
    """Fail every stack (and resource) left IN_PROGRESS; the ids of the stacks failed.

    Only for a store no engine runs on (an operator's repair after every task manager
    stopped): a live engine's operations would be failed too. A task manager fails only
    the stack of a job it resumes (`LocalStackService.take_over`).
    """
    return [stack.id for stack in store.list_stacks() if fail_interrupted(store, stack.id)]
