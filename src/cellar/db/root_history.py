"""Persistence of Trove's root history: keyword-only functions that take a session."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cellar.db.instances import utcnow
from cellar.db.models import RootEnabledHistory


def root_enabled(session: Session, *, instance_id: str) -> bool:
    """Enabled, and not disabled since (Trove's `Root.load`)."""
    row = session.get(RootEnabledHistory, instance_id)
    return row is not None and (row.deleted_at is None or row.deleted_at <= row.created)


def record_enabled(session: Session, *, instance_id: str, user: str) -> None:
    row = session.get(RootEnabledHistory, instance_id)
    if row is not None and root_enabled(session, instance_id=instance_id):
        return
    if row is None:
        row = RootEnabledHistory(instance_id=instance_id)
        session.add(row)
    row.user, row.created, row.deleted_at = user, utcnow(), None
    session.flush()


def record_disabled(session: Session, *, instance_id: str) -> None:
    row = session.get(RootEnabledHistory, instance_id)
    if row is not None:
        row.deleted_at = utcnow()
        session.flush()
