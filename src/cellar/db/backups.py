"""Persistence of backups: keyword-only functions that take a session."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cellar.db.instances import utcnow
from cellar.db.models import Backup
from cellar.domain.backups import BackupStatus
from cellar.domain.errors import NotFound


def create_backup(session: Session, **values: Any) -> Backup:
    now = utcnow()
    row = Backup(state=BackupStatus.NEW.value, created=now, updated=now, deleted=False, **values)
    session.add(row)
    session.flush()
    return row


def get_backup(session: Session, *, backup_id: str, project_id: str | None = None) -> Backup:
    """The live backup, or NotFound (another project's too)."""
    row = session.get(Backup, backup_id)
    if row is None or row.deleted or (project_id is not None and row.tenant_id != project_id):
        raise NotFound("Backup", backup_id)
    return row


def list_backups(
    session: Session,
    *,
    project_id: str | None,
    instance_id: str | None = None,
    version_ids: list[str] | None = None,
) -> list[Backup]:
    query = select(Backup).where(Backup.deleted.is_(False))
    if project_id is not None:
        query = query.where(Backup.tenant_id == project_id)
    if instance_id is not None:
        query = query.where(Backup.instance_id == instance_id)
    if version_ids is not None:
        query = query.where(Backup.datastore_version_id.in_(version_ids))
    return list(session.scalars(query.order_by(Backup.created, Backup.id)))


def children(session: Session, *, backup_id: str) -> list[Backup]:
    """The live incremental backups taken on top of this one."""
    query = select(Backup).where(Backup.parent_id == backup_id, Backup.deleted.is_(False))
    return list(session.scalars(query))


def last_completed(
    session: Session, *, stanza: str, before: datetime | None = None
) -> Backup | None:
    """The newest completed backup in a stanza (a replication group's members share one:
    an incremental backup is taken on the group's newest set, whichever member's); with
    `before` (naive UTC), the newest that ended before it."""
    query = select(Backup).where(
        Backup.stanza == stanza,
        Backup.state == BackupStatus.COMPLETED.value,
        Backup.deleted.is_(False),
    )
    if before is not None:
        query = query.where(Backup.stopped_at < before)
    query = query.order_by(Backup.stopped_at.desc(), Backup.created.desc())
    return session.scalars(query).first()


def update_backup(session: Session, *, backup_id: str, **values: Any) -> None:
    session.execute(
        update(Backup)
        .where(Backup.id == backup_id)
        .values(updated=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
