"""Backups: a guest task, the same under every resource manager. The backup repository
(`Services.backup`: pgBackRest on the local cloud) takes the set from the instance's
running datastore and checks it; the steps start it, follow its progress, and remove a
set again."""

from __future__ import annotations

import contextlib
from typing import Any

from taskflow.patterns import linear_flow

from cellar.domain.backups import BackupProgress, BackupSet, BackupState, archive_id
from cellar.domain.errors import CellarError
from cellar.drivers.backup.base import BackupDriver, BackupSetNotFound
from cellar.resource_managers.base import ManagerContext
from cellar.resource_managers.common import CellarTask


def repository(t: CellarTask) -> BackupDriver:
    backups: BackupDriver | None = t.services.backup
    if backups is None:
        raise CellarError("This cloud's backend has no backup repository.")
    return backups


def set_to_dict(found: BackupSet) -> dict[str, Any]:
    """A set as the flow's storage keeps it (JSON)."""
    return {
        "label": found.label,
        "type": found.type.value,
        "parent_label": found.parent_label,
        "started_at": found.started_at.isoformat(),
        "stopped_at": found.stopped_at.isoformat(),
        "start_lsn": found.start_lsn,
        "stop_lsn": found.stop_lsn,
        "database_size_bytes": found.database_size_bytes,
        "repository_size_bytes": found.repository_size_bytes,
    }


BACKUP_POLL_S = 0.05


def archive_and_primary(ctx: ManagerContext, instance_id: str) -> tuple[str, str]:
    """The instance's archive (`archive_id`) and the member that archives into it now:
    the instance itself, or its replication group's primary (a replica is a backup's
    source with its primary's help)."""
    record = ctx.store.get(instance_id)
    archive = archive_id(instance_id, record.cluster_id)
    if record.cluster_id is None or record.replica_of is None:
        return archive, instance_id
    primaries = [m.id for m in ctx.store.cluster_members(record.cluster_id) if m.replica_of is None]
    if not primaries:
        raise CellarError(f"The replication group of instance {instance_id} has no primary.")
    return archive, primaries[0]


class TakeBackup(CellarTask):
    """Start the backup (idempotent per backup id: a resumed job finds it running or
    done) and wait for it: COMPLETED means taken and checked by the engine."""

    def __init__(
        self, ctx: ManagerContext, instance_id: str, backup_id: str, incremental: bool, *,
        name: str,
    ) -> None:  # fmt: skip
        super().__init__(ctx, instance_id, name=name, provides="backup_set")
        self.backup_id = backup_id
        self.incremental = incremental

    def execute(self) -> dict[str, Any]:
        backups = repository(self)
        archive, primary = archive_and_primary(self.ctx, self.instance_id)
        self.call(
            backups.start_backup, archive, self.backup_id, incremental=self.incremental,
            source=self.instance_id, primary=primary,
        )  # fmt: skip
        progress: BackupProgress = self.wait_for(
            f"backup {self.backup_id} of instance {self.instance_id}",
            lambda: backups.backup_progress(archive, self.backup_id),
            lambda p: p.state is not BackupState.RUNNING,
            timeout_s=self.ctx.settings.backup_timeout_s,
            cancellable=False,
            # A probe reads the job's state (the engine is asked for its percent at most
            # once a second): the end is seen within BACKUP_POLL_S.
            every_s=max(self.ctx.settings.poll_interval_s, BACKUP_POLL_S),
        )
        if progress.state is BackupState.FAILED or progress.backup_set is None:
            raise CellarError(f"The backup failed: {progress.error or 'no set was made'}")
        return set_to_dict(progress.backup_set)


class DeleteBackupSet(CellarTask):
    """Remove the set from the repository (gone already: nothing to do)."""

    def __init__(
        self, ctx: ManagerContext, instance_id: str, archive: str, label: str, *, name: str
    ) -> None:
        super().__init__(ctx, instance_id, name=name)
        self.archive = archive
        self.label = label

    def execute(self) -> None:
        with contextlib.suppress(BackupSetNotFound):
            self.call(repository(self).delete_backup_set, self.archive, self.label)


class ExpireBackups(CellarTask):
    """After a scheduled backup: the engine's own retention. Returns the labels that
    remain, for the rows to follow."""

    def __init__(
        self, ctx: ManagerContext, instance_id: str, keep_full: int | None,
        keep_days: int | None, *, name: str,
    ) -> None:  # fmt: skip
        super().__init__(ctx, instance_id, name=name, provides="kept_labels")
        self.keep_full = keep_full
        self.keep_days = keep_days

    def execute(self) -> list[str]:
        backups = repository(self)
        archive, _ = archive_and_primary(self.ctx, self.instance_id)
        self.call(backups.expire, archive, keep_full=self.keep_full, keep_days=self.keep_days)
        return [s.label for s in self.call(backups.list_backup_sets, archive)]


def backup_flow(
    ctx: ManagerContext, instance_id: str, backup_id: str, incremental: bool
) -> linear_flow.Flow:
    return linear_flow.Flow("backup").add(
        TakeBackup(ctx, instance_id, backup_id, incremental, name="backup.take")
    )


def delete_backup_flow(
    ctx: ManagerContext, instance_id: str, archive: str, label: str
) -> linear_flow.Flow:
    return linear_flow.Flow("delete_backup").add(
        DeleteBackupSet(ctx, instance_id, archive, label, name="backup.delete")
    )
