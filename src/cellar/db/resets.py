"""Trove's `reset_status`: an administrator's way out of a stuck state.

The instance's task goes back to NONE from whatever it was (but DELETED), its datastore
to UNKNOWN (so it shows ERROR until its guest reports again), and its backups still
under way are failed, as Trove's `backup_model.fail_for_instance` does.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from cellar.db.instances import get_instance, utcnow
from cellar.db.models import Backup, Instance
from cellar.domain.backups import BackupStatus
from cellar.domain.status import InstanceTask, ServiceStatus, check_reset

RUNNING_BACKUPS = (BackupStatus.NEW.value, BackupStatus.BUILDING.value)


def reset_instance_status(session: Session, *, instance_id: str) -> None:
    row = get_instance(session, instance_id=instance_id)
    check_reset(InstanceTask(row.task_status))
    now = utcnow()
    session.execute(
        update(Instance)
        .where(Instance.id == instance_id)
        .values(
            task_status=InstanceTask.NONE.value,
            task_description="The status was reset.",
            task_start_time=now,
            service_status=ServiceStatus.UNKNOWN.value,
            updated=now,
        )
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Backup)
        .where(
            Backup.instance_id == instance_id,
            Backup.deleted.is_(False),
            Backup.state.in_(RUNNING_BACKUPS),
        )
        .values(
            state=BackupStatus.FAILED.value,
            fail_reason="The instance's status was reset.",
            updated=now,
        )
        .execution_options(synchronize_session=False)
    )


def reset_task(session: Session, *, instance_id: str) -> None:
    """Trove's management `reset-task-status`: the task back to NONE, nothing else."""
    row = get_instance(session, instance_id=instance_id)
    check_reset(InstanceTask(row.task_status))
    now = utcnow()
    session.execute(
        update(Instance)
        .where(Instance.id == instance_id)
        .values(task_status=InstanceTask.NONE.value, task_start_time=now, updated=now)
        .execution_options(synchronize_session=False)
    )
