"""Persistence of Trove's root history: keyword-only functions that take a session.

The members of a replication group (a cluster, or a primary and its `replica_of`
replicas) share one superuser, replicated: root enabled or disabled on the primary is
recorded for every member (Trove's `ClusterRoot.create`)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

from cellar.db.clusters import members
from cellar.db.instances import get_instance, utcnow
from cellar.db.models import RootEnabledHistory


def group_of(session: Session, *, instance_id: str) -> list[str]:
    """The instance and the members it shares its superuser with."""
    row = get_instance(session, instance_id=instance_id)
    if row.cluster_id is None:
        return [row.id]
    return [m.id for m in members(session, cluster_id=row.cluster_id)] or [row.id]


def root_enabled(session: Session, *, instance_id: str) -> bool:
    """Whether root was ever enabled on the instance (Trove's `Root.load`: its history
    has a row; a disable does not take it away). `deleted_at` records the last disable."""
    return session.get(RootEnabledHistory, instance_id) is not None


def record_enabled(session: Session, *, instance_ids: Iterable[str], user: str) -> None:
    for instance_id in instance_ids:
        row = session.get(RootEnabledHistory, instance_id)
        if row is not None and row.deleted_at is None:
            continue
        if row is None:
            row = RootEnabledHistory(instance_id=instance_id)
            session.add(row)
        row.user, row.created, row.deleted_at = user, utcnow(), None
    session.flush()


def record_disabled(session: Session, *, instance_ids: Iterable[str]) -> None:
    for instance_id in instance_ids:
        row = session.get(RootEnabledHistory, instance_id)
        if row is not None:
            row.deleted_at = utcnow()
    session.flush()
