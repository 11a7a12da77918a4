"""The view of an instance's events."""

from __future__ import annotations

from cellar.api.views.common import View, isotime
from cellar.db.models import Event


class EventView(View):
    id: int
    operation: str
    step: str
    outcome: str
    message: str
    duration_ms: int | None
    created: str | None


def event_view(row: Event) -> EventView:
    return EventView(
        id=row.id,
        operation=row.operation,
        step=row.step,
        outcome=row.outcome,
        message=row.message,
        duration_ms=row.duration_ms,
        created=isotime(row.created),
    )
