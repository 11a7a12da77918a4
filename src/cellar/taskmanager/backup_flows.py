"""Backup jobs: the repository's steps (`resource_managers.backups`) between the rows'
lifecycle: the backup BUILDING, then COMPLETED with its set (label, sizes, times); the
instance back to idle. A failure leaves the backup FAILED with the reason and the
instance ACTIVE (a failed backup changed nothing on it); a failed delete DELETE_FAILED."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from taskflow import task

from cellar.db.models import Job
from cellar.domain.backups import BackupStatus, archive_of_stanza
from cellar.domain.errors import CellarError
from cellar.domain.status import InstanceTask
from cellar.resource_managers.backups import ExpireBackups, backup_flow, delete_backup_flow
from cellar.resource_managers.base import ResourceManager
from cellar.taskmanager.kinds import JobKind
from cellar.taskmanager.store import DbInstanceStore


class _BackupStep(task.Task):  # type: ignore[misc]
    def __init__(self, store: DbInstanceStore, backup_id: str, *, name: str) -> None:
        super().__init__(name=name)
        self.store = store
        self.backup_id = backup_id


class MarkBuilding(_BackupStep):
    def execute(self) -> None:
        self.store.update_backup(self.backup_id, state=BackupStatus.BUILDING.value)


def _naive_utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=None)


class RecordBackup(_BackupStep):
    def execute(self, backup_set: dict[str, Any]) -> str:
        self.store.update_backup(
            self.backup_id,
            state=BackupStatus.COMPLETED.value,
            label=backup_set["label"],
            size_bytes=backup_set["database_size_bytes"],
            repository_bytes=backup_set["repository_size_bytes"],
            started_at=_naive_utc(backup_set["started_at"]),
            stopped_at=_naive_utc(backup_set["stopped_at"]),
            fail_reason=None,
        )
        return (
            f"{backup_set['type']} backup set {backup_set['label']}: "
            f"{backup_set['database_size_bytes']} bytes of database, "
            f"{backup_set['repository_size_bytes']} stored"
        )


class ForgetExpired(_BackupStep):
    """The rows of the instance's sets the engine expired are DELETED."""

    def __init__(self, store: DbInstanceStore, backup_id: str, instance_id: str, *, name: str):
        super().__init__(store, backup_id, name=name)
        self.instance_id = instance_id

    def execute(self, kept_labels: list[str]) -> str:
        gone = self.store.forget_backups_without(self.instance_id, set(kept_labels))
        return f"retention: {len(gone)} backups expired" + (f" ({', '.join(gone)})" if gone else "")


class MarkBackupDeleted(_BackupStep):
    def execute(self) -> None:
        self.store.update_backup(self.backup_id, state=BackupStatus.DELETED.value, deleted=True)


class InstanceIdle(_BackupStep):
    def __init__(self, store: DbInstanceStore, backup_id: str, instance_id: str, *, name: str):
        super().__init__(store, backup_id, name=name)
        self.instance_id = instance_id

    def execute(self) -> None:
        if not self.store.is_deleting(self.instance_id):
            self.store.change_task(self.instance_id, InstanceTask.NONE)


def backup_steps(manager: ResourceManager, store: DbInstanceStore, job: Job) -> list[Any]:
    kind, args = JobKind(job.kind), job.args
    backup_id = str(args["backup_id"])
    if kind is JobKind.BACKUP_INSTANCE:
        iid = job.instance_id or ""
        steps: list[Any] = [
            MarkBuilding(store, backup_id, name="backup.building"),
            backup_flow(manager.ctx, iid, backup_id, bool(args.get("incremental"))),
            RecordBackup(store, backup_id, name="backup.completed"),
        ]
        expire = args.get("expire")
        if expire:
            keep_full, keep_days = expire.get("keep_full"), expire.get("keep_days")
            steps += [
                ExpireBackups(manager.ctx, iid, keep_full, keep_days, name="backup.expire"),
                ForgetExpired(store, backup_id, iid, name="backup.forget_expired"),
            ]
        return [*steps, InstanceIdle(store, backup_id, iid, name="instance.ready")]
    if kind is JobKind.DELETE_BACKUP:
        source, stanza, label = store.backup_source(backup_id)
        return [
            delete_backup_flow(manager.ctx, source, archive_of_stanza(stanza), label or ""),
            MarkBackupDeleted(store, backup_id, name="backup.deleted"),
        ]
    raise ValueError(f"not a backup job: {job.kind!r}")


def record_backup_failure(store: DbInstanceStore, job: Job, message: str) -> None:
    kind, backup_id = JobKind(job.kind), str(job.args["backup_id"])
    if kind is JobKind.DELETE_BACKUP:
        store.update_backup(backup_id, state=BackupStatus.DELETE_FAILED.value, fail_reason=message)
        return
    store.update_backup(backup_id, state=BackupStatus.FAILED.value, fail_reason=message)
    iid = job.instance_id or ""
    try:
        if store.get(iid).task == InstanceTask.BACKING_UP.value:
            store.change_task(iid, InstanceTask.NONE)
    except CellarError:
        pass
