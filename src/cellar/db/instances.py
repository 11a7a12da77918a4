"""Persistence of instances: keyword-only functions that take a session."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from cellar.db.models import Instance
from cellar.domain.errors import BadRequest, Conflict, NotFound
from cellar.domain.status import InstanceTask, check_transition


def utcnow() -> datetime:
    """Naive UTC (the columns are timezone-less on every backend)."""
    return datetime.now(UTC).replace(tzinfo=None)


def create_instance(session: Session, **values: Any) -> Instance:
    now = utcnow()
    row = Instance(
        task_status=InstanceTask.BUILDING.value,
        task_start_time=now,
        service_status="NEW",
        created=now,
        updated=now,
        **values,
    )
    session.add(row)
    session.flush()
    return row


def get_instance(
    session: Session, *, instance_id: str, project_id: str | None = None, deleted: bool = False
) -> Instance:
    """The instance, or NotFound; with `project_id`, another project's instance is NotFound."""
    row = session.get(Instance, instance_id)
    if (
        row is None
        or (row.deleted and not deleted)
        or (project_id is not None and row.tenant_id != project_id)
    ):
        raise NotFound("Instance", instance_id)
    return row


def change_task(
    session: Session,
    *,
    instance_id: str,
    target: InstanceTask,
    expected: InstanceTask | None = None,
    description: str | None = None,
    **values: Any,
) -> Instance:
    """Move the instance's task to `target` under the transition rules.

    The change is a compare-and-set on the task seen: if another request changed it in
    between, this raises Conflict (HTTP 409) instead of overwriting its work.
    """
    row = get_instance(session, instance_id=instance_id, deleted=True)
    current = InstanceTask(row.task_status)
    if expected is not None and current is not expected:
        raise Conflict(f"Instance {instance_id} is {current.value}, not {expected.value}.")
    check_transition(current, target)
    now = utcnow()
    changes: dict[str, Any] = {"task_status": target.value, "updated": now, **values}
    if description is not None:
        changes["task_description"] = description
    if target is not current:
        changes["task_start_time"] = now
    result = session.execute(
        update(Instance)
        .where(Instance.id == instance_id, Instance.task_status == current.value)
        .values(**changes)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"Instance {instance_id} changed while this request was handled.")
    session.refresh(row)
    return row


def update_instance(session: Session, *, instance_id: str, **values: Any) -> None:
    """Set plain columns (ids, statuses reported by services); never the task."""
    if "task_status" in values:
        raise ValueError("task_status changes go through change_task")
    session.execute(
        update(Instance)
        .where(Instance.id == instance_id)
        .values(updated=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )


def live_instance_ids(session: Session) -> set[str]:
    """Ids of every instance not yet deleted (what `cellar audit` checks ownership against)."""
    return set(session.scalars(select(Instance.id).where(Instance.deleted.is_(False))))


def list_instances(
    session: Session, *, project_id: str | None, limit: int, marker: str | None = None
) -> tuple[list[Instance], str | None]:
    """One page of live instances, oldest first, and the marker of the next page (or None).

    `project_id` None lists every project (admins). `marker` is the id of the last
    instance of the previous page; it may have been deleted since, but an id that never
    belonged to this listing is a BadRequest naming `marker`.
    """
    query = select(Instance).where(Instance.deleted.is_(False))
    if project_id is not None:
        query = query.where(Instance.tenant_id == project_id)
    if marker is not None:
        seen = session.get(Instance, marker)
        if seen is None or (project_id is not None and seen.tenant_id != project_id):
            raise BadRequest("marker", f"{marker!r} is not an instance of this listing")
        query = query.where(
            or_(
                Instance.created > seen.created,
                and_(Instance.created == seen.created, Instance.id > seen.id),
            )
        )
    rows = list(session.scalars(query.order_by(Instance.created, Instance.id).limit(limit + 1)))
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].id
    return rows, None


def replicas_of(session: Session, *, instance_id: str) -> list[str]:
    """The ids of the live replicas of an instance, oldest first."""
    return list(
        session.scalars(
            select(Instance.id)
            .where(Instance.replica_of_id == instance_id, Instance.deleted.is_(False))
            .order_by(Instance.created, Instance.id)
        )
    )


def replicas_by_primary(session: Session, *, instance_ids: Iterable[str]) -> dict[str, list[str]]:
    """`replicas_of` for many instances in one query: primary id -> its live replicas."""
    ids = list(instance_ids)
    found: dict[str, list[str]] = {}
    if not ids:
        return found
    rows = session.execute(
        select(Instance.replica_of_id, Instance.id)
        .where(Instance.replica_of_id.in_(ids), Instance.deleted.is_(False))
        .order_by(Instance.created, Instance.id)
    )
    for primary, replica in rows:
        found.setdefault(str(primary), []).append(replica)
    return found
