"""Persistence of events: one row per step of every operation, shown to users."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Insert, insert, select
from sqlalchemy.orm import Session

from cellar.db.instances import utcnow
from cellar.db.models import Event


def event_insert(
    *,
    instance_id: str,
    operation: str,
    step: str,
    outcome: str,
    message: str = "",
    duration_ms: int | None = None,
    job_id: str | None = None,
) -> Insert:
    """The one INSERT of an event row: the task manager runs it on a plain connection
    (several per step, so no ORM session), `record_event` in a session."""
    return insert(Event).values(
        instance_id=instance_id,
        job_id=job_id,
        operation=operation,
        step=step,
        outcome=outcome,
        message=message,
        duration_ms=duration_ms,
        created=utcnow(),
    )


def record_event(session: Session, **fields: Any) -> None:
    session.execute(event_insert(**fields))


def list_events(session: Session, *, instance_id: str) -> list[Event]:
    """The instance's events, oldest first."""
    return list(
        session.scalars(select(Event).where(Event.instance_id == instance_id).order_by(Event.id))
    )
