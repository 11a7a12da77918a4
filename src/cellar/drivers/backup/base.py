"""The backup repository: where every instance's WAL and backups go, owned by the cloud.

One repository per project (what isolates it is the backend's business: on the local
cloud, per-project client certificates that pgBackRest's TLS repository server checks
against the project's stanzas; on OpenStack it would be an object-store container per
project with its own credentials). A stanza is named by its archive id
(`cellar.domain.backups.archive_id`: a lone instance's own id, or its replication
group's, whose members share one stanza); the `archive` parameters below are that id.
A stanza outlives its instances, so everything here works after they are deleted.

Backups are asynchronous: `start_backup` returns at once and is idempotent per
`backup_id` (a repeat neither starts a second backup nor fails); `backup_progress` is
polled until COMPLETED (taken and verified) or FAILED.
"""

from __future__ import annotations

import abc
from datetime import datetime

from cellar.domain.backups import (
    BackupProgress,
    BackupSet,
    RepositoryAccess,
    RestorableWindow,
    RestoreTarget,
    stanza_name,
)
from cellar.drivers.base import DriverError, DriverOperationNotSupported, ResourceNotFound


class BackupError(DriverError):
    """The repository refused or failed an operation (the message is safe to show)."""


class BackupSetNotFound(ResourceNotFound):
    def __init__(self, instance_id: str, label: str) -> None:
        super().__init__("Backup set", f"{label} of instance {instance_id}")
        self.instance_id = instance_id
        self.label = label


class BackupSetInUse(BackupError):
    """A backup set an incremental one depends on cannot be deleted alone."""

    def __init__(self, label: str, dependents: tuple[str, ...]) -> None:
        super().__init__(
            f"Backup set {label} cannot be deleted: incremental backup(s) "
            f"{', '.join(dependents)} depend on it."
        )
        self.label = label
        self.dependents = dependents


class OutsideRestorableWindow(BackupError):
    def __init__(self, instant: datetime, window: RestorableWindow | None) -> None:
        where = (
            "there is no restorable window yet (no backup)"
            if window is None
            else f"the restorable window is {window.restorable_from.isoformat()} to "
            f"{window.restorable_until.isoformat()}"
        )
        super().__init__(f"{instant.isoformat()} cannot be restored: {where}.")
        self.instant = instant
        self.window = window


class BackupDriver(abc.ABC):
    name: str = "backup"

    @abc.abstractmethod
    def repository_access(
        self, project_id: str, archive: str, *, member: str | None = None
    ) -> RepositoryAccess:
        """What an instance's guest is given at prepare (the stanza of `archive` in its
        project's repository, and how to reach it); the repository takes the stanza from
        now on. `member`: the instance, when it is a member of the replication group
        `archive` (by default the instance is `archive` itself). The same on every call."""

    @abc.abstractmethod
    def create_stanza(self, archive: str, *, primary: str | None = None) -> None:
        """Once the archive's primary (`primary`, by default `archive` itself) runs,
        prepared with its access: make the stanza, so that its archived WAL is kept from
        then on. Idempotent."""

    @abc.abstractmethod
    def start_backup(
        self, archive: str, backup_id: str, *, incremental: bool = False,
        source: str | None = None, primary: str | None = None,
    ) -> None:  # fmt: skip
        """Start a backup of the archive's running system (incremental on its newest set,
        or full if it has none); returns at once. Idempotent per `backup_id`. `source`:
        the member whose files are copied, a replica if wanted (pgBackRest then starts
        and stops the backup on `primary`, which must run too); both by default `archive`
        itself."""

    @abc.abstractmethod
    def backup_progress(self, instance_id: str, backup_id: str) -> BackupProgress:
        """Where the backup started for `backup_id` stands (FAILED if none was)."""

    @abc.abstractmethod
    def list_backup_sets(self, instance_id: str) -> tuple[BackupSet, ...]:
        """The instance's backup sets, oldest first (empty when it has none, or no stanza)."""

    @abc.abstractmethod
    def restorable_window(self, instance_id: str) -> RestorableWindow | None:
        """The instants the instance's stanza can be restored to; None before its first
        backup."""

    @abc.abstractmethod
    def delete_backup_set(self, instance_id: str, label: str) -> None:
        """Remove one set (`BackupSetInUse` if an incremental one depends on it; nothing
        if it is gone already)."""

    def restore_target(
        self,
        instance_id: str,
        *,
        label: str | None = None,
        target_time: datetime | None = None,
    ) -> RestoreTarget:
        """A restore of the (possibly deleted) instance's stanza, checked: the set exists
        (`BackupSetNotFound`), the instant is inside the window (`OutsideRestorableWindow`)
        and, with both, not before the set's end."""
        if label is not None:
            found = [s for s in self.list_backup_sets(instance_id) if s.label == label]
            if not found:
                raise BackupSetNotFound(instance_id, label)
            if target_time is not None and target_time < found[0].stopped_at:
                raise BackupError(
                    f"{target_time.isoformat()} is before the end of backup set {label} "
                    f"({found[0].stopped_at.isoformat()})."
                )
        if target_time is not None:
            window = self.restorable_window(instance_id)
            if window is None or target_time not in window:
                raise OutsideRestorableWindow(target_time, window)
        return RestoreTarget(stanza_name(instance_id), label=label, target_time=target_time)

    def expire(
        self, instance_id: str, *, keep_full: int | None = None, keep_days: int | None = None
    ) -> None:
        """The engine's own retention (pgBackRest's `expire`): full backups beyond the
        newest `keep_full`, or older than `keep_days`, go with their incrementals and the
        WAL no remaining backup needs. The newest full backup always stays."""
        raise DriverOperationNotSupported(self.name, "expire")

    def forget_instance(self, instance_id: str) -> None:
        """Remove the instance's stanza and everything in it (its project's decision, not
        the instance's delete: backups outlive their instance)."""
        raise DriverOperationNotSupported(self.name, "forget_instance")
