"""Backups written as jobs, asked by a user (`POST /backups`) or by an instance's
schedule, and the scheduler every task manager runs.

The scheduler, every `backup_schedule_check_s`, takes each due schedule whose instance
is idle and ACTIVE: writes the backup (`automated-<time>`) and its job, with the
schedule's retention for the engine's expiry after it, and moves the schedule on by its
interval; all in one transaction, the instance's task a compare-and-set, so of several
task managers exactly one takes it. A busy instance is tried again at the next check.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cellar.db import backups as repo
from cellar.db import instances as instances_repo
from cellar.db.engine import transaction
from cellar.db.instances import utcnow
from cellar.db.jobs import submit_job
from cellar.db.models import Backup, BackupSchedule, Instance
from cellar.domain.backups import archive_id, stanza_name
from cellar.domain.errors import CellarError
from cellar.domain.status import InstanceTask, ServerStatus, ServiceStatus, check_can_act
from cellar.taskmanager.kinds import JobKind

log = logging.getLogger(__name__)


def submit_backup(
    session: Session,
    *,
    instance: Instance,
    name: str,
    description: str | None,
    parent: Backup | None,
    expire: dict[str, int | None] | None = None,
) -> Backup:
    """The backup row (NEW), the instance BACKING_UP (a compare-and-set on the task
    seen, after Trove's checks: 422 unless idle), and the job."""
    task = InstanceTask(instance.task_status)
    check_can_act(
        task,
        ServerStatus(instance.server_status) if instance.server_status else None,
        ServiceStatus(instance.service_status),
    )
    row = repo.create_backup(
        session,
        id=str(uuid.uuid4()),
        tenant_id=instance.tenant_id,
        name=name,
        description=description,
        instance_id=instance.id,
        stanza=stanza_name(archive_id(instance.id, instance.cluster_id)),
        parent_id=parent.id if parent is not None else None,
        datastore_version_id=instance.datastore_version_id,
    )
    instances_repo.change_task(
        session, instance_id=instance.id, target=InstanceTask.BACKING_UP, expected=task
    )
    args: dict[str, object] = {"backup_id": row.id, "incremental": parent is not None}
    if expire is not None:
        args["expire"] = expire
    submit_job(session, kind=JobKind.BACKUP_INSTANCE.value, instance_id=instance.id, args=args)
    return row


def take_due_backups(sessions: sessionmaker[Session]) -> list[str]:
    """One pass: the backup ids written for the schedules due now."""
    with transaction(sessions, readonly=True) as s:
        due = [r.instance_id for r in s.scalars(
            select(BackupSchedule).where(BackupSchedule.next_at <= utcnow())
        )]  # fmt: skip
    taken = []
    for instance_id in due:
        try:
            with transaction(sessions) as s:
                backup_id = _take(s, instance_id)
        except CellarError as exc:  # busy, or another task manager took it
            log.info("scheduled backup of %s not taken now: %s", instance_id, exc)
            continue
        if backup_id is not None:
            taken.append(backup_id)
    return taken


def _take(session: Session, instance_id: str) -> str | None:
    schedule = session.get(BackupSchedule, instance_id)
    now = utcnow()
    if schedule is None or schedule.next_at > now:
        return None  # gone, or taken by another task manager meanwhile
    instance = session.get(Instance, instance_id)
    if instance is None or instance.deleted:
        session.delete(schedule)
        return None
    parent = None
    if schedule.incremental:
        stanza = stanza_name(archive_id(instance.id, instance.cluster_id))
        parent = repo.last_completed(session, stanza=stanza)
    row = submit_backup(
        session,
        instance=instance,
        name=f"automated-{now:%Y%m%dT%H%M%SZ}",
        description="automated backup (backup_schedule)",
        parent=parent,
        expire={"keep_full": schedule.keep_full, "keep_days": schedule.keep_days},
    )
    schedule.next_at = now + timedelta(seconds=schedule.interval_s)
    schedule.updated = now
    return row.id
