"""Persistence of configuration groups: keyword-only functions that take a session."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cellar.db.instances import utcnow
from cellar.db.models import Configuration, Instance
from cellar.domain.errors import NotFound


def create_configuration(session: Session, **values: Any) -> Configuration:
    now = utcnow()
    row = Configuration(id=str(uuid.uuid4()), created=now, updated=now, deleted=False, **values)
    session.add(row)
    session.flush()
    return row


def get_configuration(
    session: Session, *, configuration_id: str, project_id: str | None = None
) -> Configuration:
    """The live group, or NotFound (another project's too)."""
    row = session.get(Configuration, configuration_id)
    if row is None or row.deleted or (project_id is not None and row.tenant_id != project_id):
        raise NotFound("Configuration group", configuration_id)
    return row


def list_configurations(session: Session, *, project_id: str | None) -> list[Configuration]:
    query = select(Configuration).where(Configuration.deleted.is_(False))
    if project_id is not None:
        query = query.where(Configuration.tenant_id == project_id)
    return list(session.scalars(query.order_by(Configuration.created, Configuration.id)))


def attached_instances(session: Session, *, configuration_id: str) -> list[Instance]:
    """The live instances the group is attached to."""
    query = select(Instance).where(
        Instance.configuration_id == configuration_id, Instance.deleted.is_(False)
    )
    return list(session.scalars(query.order_by(Instance.created, Instance.id)))


def instance_count(session: Session, *, configuration_id: str) -> int:
    query = select(func.count()).where(
        Instance.configuration_id == configuration_id, Instance.deleted.is_(False)
    )
    return int(session.scalar(query) or 0)


def update_configuration(session: Session, *, row: Configuration, **values: Any) -> None:
    for key, value in values.items():
        setattr(row, key, value)
    row.updated = utcnow()
    session.flush()


def delete_configuration(session: Session, *, row: Configuration) -> None:
    row.deleted = True
    row.deleted_at = row.updated = utcnow()
    session.flush()
