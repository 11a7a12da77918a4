"""The backup contract: an instance archiving into its stanza, backups taken, listed, the
window, deletes refused under an incremental, checked restore targets.

The backend's `services.backup` is the repository; its guests must archive for real (a
stand-in agent cannot), so this runs against the fake backend here (the local one is
tested on real PostgreSQL in tests/guest/test_backups.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from contract_support import IMAGE, SMALL, Wait, instance_spec, missing_id

from cellar.domain.backups import (
    BackupProgress,
    BackupSet,
    BackupState,
    BackupType,
    RestorableWindow,
    RestoreTarget,
    stanza_name,
)
from cellar.domain.specs import resource_name
from cellar.domain.status import ServerStatus, ServiceStatus
from cellar.drivers.backup.base import (
    BackupDriver,
    BackupError,
    BackupSetInUse,
    BackupSetNotFound,
    OutsideRestorableWindow,
)
from cellar.drivers.registry import Services

PROJECT = "contract-project"


def repository(services: Services) -> BackupDriver:
    assert services.backup is not None, "the backend has no backup repository"
    return services.backup


def archiving_instance(services: Services, wait: Wait, project: str = PROJECT) -> str:
    """An instance whose datastore runs and archives into its stanza, made: its id."""
    instance_id = missing_id()
    server = services.compute.create_server(
        name=resource_name(instance_id), flavor=SMALL, image=IMAGE
    )
    wait.server(services, server.id, ServerStatus.ACTIVE)
    access = repository(services).repository_access(project, instance_id)
    services.guest.prepare_with_repository(
        instance_id, server_id=server.id, spec=instance_spec(instance_id), repository=access
    )
    wait.service(services, instance_id, ServiceStatus.RUNNING)
    repository(services).create_stanza(instance_id)
    return instance_id


def second_after(instant: datetime) -> datetime:
    return instant.replace(microsecond=0) + timedelta(seconds=1)


def opened(services: Services, wait: Wait, instance_id: str) -> RestorableWindow:
    """The window once it is open and reaches past the newest set's end (it opens in
    the second after the one the oldest set ended in)."""
    newest = repository(services).list_backup_sets(instance_id)[-1]
    window = wait.until(
        lambda: repository(services).restorable_window(instance_id),
        lambda w: w is not None and w.restorable_until >= second_after(newest.stopped_at),
        "the restorable window to open",
    )
    assert window is not None
    return window


def finished(services: Services, wait: Wait, instance_id: str, backup_id: str) -> BackupProgress:
    return wait.until(
        lambda: repository(services).backup_progress(instance_id, backup_id),
        lambda p: p.state is not BackupState.RUNNING,
        f"backup {backup_id} finished",
    )


def taken(
    services: Services, wait: Wait, instance_id: str, *, incremental: bool = False
) -> BackupSet:
    backup_id = missing_id()
    repository(services).start_backup(instance_id, backup_id, incremental=incremental)
    progress = finished(services, wait, instance_id, backup_id)
    assert progress.state is BackupState.COMPLETED, progress
    assert progress.backup_set is not None and progress.backup_set.backup_id == backup_id
    return progress.backup_set


class BackupContract:
    def test_repository_access_names_the_instances_stanza(
        self, services: Services, wait: Wait
    ) -> None:
        instance_id = archiving_instance(services, wait)
        access = repository(services).repository_access(PROJECT, instance_id)
        assert access.stanza == stanza_name(instance_id)
        assert repository(services).repository_access(PROJECT, instance_id) == access
        with pytest.raises(BackupError):
            repository(services).repository_access("contract-other-project", instance_id)

    def test_full_then_incremental(self, services: Services, wait: Wait) -> None:
        instance_id = archiving_instance(services, wait)
        full = taken(services, wait, instance_id)
        incremental = taken(services, wait, instance_id, incremental=True)
        assert (full.type, full.parent_label) == (BackupType.FULL, None)
        assert (incremental.type, incremental.parent_label) == (BackupType.INCREMENTAL, full.label)
        for backup_set in (full, incremental):
            assert backup_set.started_at <= backup_set.stopped_at
            assert backup_set.start_lsn <= backup_set.stop_lsn
            assert backup_set.database_size_bytes > 0 and backup_set.repository_size_bytes > 0
        assert full.stopped_at <= incremental.started_at
        assert full.stop_lsn <= incremental.start_lsn
        assert full.label < incremental.label
        assert repository(services).list_backup_sets(instance_id) == (full, incremental)

    def test_an_incremental_without_a_prior_set_is_full(
        self, services: Services, wait: Wait
    ) -> None:
        instance_id = archiving_instance(services, wait)
        first = taken(services, wait, instance_id, incremental=True)
        assert (first.type, first.parent_label) == (BackupType.FULL, None)

    def test_start_is_idempotent_per_backup_id(self, services: Services, wait: Wait) -> None:
        instance_id, backup_id = archiving_instance(services, wait), missing_id()
        backups = repository(services)
        backups.start_backup(instance_id, backup_id)
        backups.start_backup(instance_id, backup_id)
        progress = finished(services, wait, instance_id, backup_id)
        backups.start_backup(instance_id, backup_id, incremental=True)
        assert progress.state is BackupState.COMPLETED and progress.percent == 100.0
        assert backups.list_backup_sets(instance_id) == (progress.backup_set,)
        assert finished(services, wait, instance_id, backup_id) == progress

    def test_the_window_runs_from_the_oldest_sets_end(self, services: Services, wait: Wait) -> None:
        instance_id = archiving_instance(services, wait)
        assert repository(services).restorable_window(instance_id) is None
        full = taken(services, wait, instance_id)
        incremental = taken(services, wait, instance_id, incremental=True)
        window = opened(services, wait, instance_id)
        # From the second after the one the oldest set ended in (whole-second stamps).
        assert window.restorable_from == second_after(full.stopped_at)
        assert full.stopped_at not in window
        assert window.restorable_until >= incremental.stopped_at

    def test_a_set_an_incremental_depends_on_is_deleted_last(
        self, services: Services, wait: Wait
    ) -> None:
        instance_id = archiving_instance(services, wait)
        backups = repository(services)
        full = taken(services, wait, instance_id)
        first = taken(services, wait, instance_id, incremental=True)
        second = taken(services, wait, instance_id, incremental=True)
        assert second.parent_label == first.label
        with pytest.raises(BackupSetInUse) as caught:
            backups.delete_backup_set(instance_id, full.label)
        assert set(caught.value.dependents) == {first.label, second.label}
        with pytest.raises(BackupSetInUse):
            backups.delete_backup_set(instance_id, first.label)
        assert backups.list_backup_sets(instance_id) == (full, first, second)
        for backup_set in (second, first, full):
            backups.delete_backup_set(instance_id, backup_set.label)
        assert backups.list_backup_sets(instance_id) == ()
        backups.delete_backup_set(instance_id, full.label)  # gone already: nothing
        assert backups.restorable_window(instance_id) is None

    def test_a_deleted_sets_backup_is_no_longer_completed(
        self, services: Services, wait: Wait
    ) -> None:
        instance_id = archiving_instance(services, wait)
        backup_set = taken(services, wait, instance_id)
        repository(services).delete_backup_set(instance_id, backup_set.label)
        assert backup_set.backup_id is not None
        progress = repository(services).backup_progress(instance_id, backup_set.backup_id)
        assert progress.state is BackupState.FAILED and progress.error

    def test_an_unknown_set(self, services: Services, wait: Wait) -> None:
        instance_id = archiving_instance(services, wait)
        taken(services, wait, instance_id)
        repository(services).delete_backup_set(instance_id, "20200101-000000F")
        with pytest.raises(BackupSetNotFound) as caught:
            repository(services).restore_target(instance_id, label="20200101-000000F")
        assert caught.value.label == "20200101-000000F"

    def test_restore_targets_are_checked(self, services: Services, wait: Wait) -> None:
        instance_id = archiving_instance(services, wait)
        backups, stanza = repository(services), stanza_name(instance_id)
        full = taken(services, wait, instance_id)
        incremental = taken(services, wait, instance_id, incremental=True)
        assert backups.restore_target(instance_id, label=full.label) == RestoreTarget(
            stanza, label=full.label
        )
        window = opened(services, wait, instance_id)
        inside = backups.restore_target(
            instance_id, label=full.label, target_time=window.restorable_until
        )
        assert inside == RestoreTarget(stanza, full.label, window.restorable_until)
        start = window.restorable_from
        assert backups.restore_target(instance_id, target_time=start).label is None
        with pytest.raises(OutsideRestorableWindow) as outside:
            backups.restore_target(instance_id, target_time=full.stopped_at - timedelta(hours=1))
        assert outside.value.window is not None
        assert outside.value.window.restorable_from == second_after(full.stopped_at)
        with pytest.raises(OutsideRestorableWindow):
            backups.restore_target(instance_id, target_time=datetime.now(UTC) + timedelta(days=1))
        with pytest.raises(BackupError) as before_its_end:
            backups.restore_target(
                instance_id, label=incremental.label, target_time=full.stopped_at
            )
        assert not isinstance(before_its_end.value, OutsideRestorableWindow)

    def test_no_instant_is_restorable_before_the_first_backup(
        self, services: Services, wait: Wait
    ) -> None:
        instance_id = archiving_instance(services, wait)
        with pytest.raises(OutsideRestorableWindow) as caught:
            repository(services).restore_target(instance_id, target_time=datetime.now(UTC))
        assert caught.value.window is None

    def test_a_backup_of_a_stopped_datastore_fails_with_its_reason(
        self, services: Services, wait: Wait
    ) -> None:
        instance_id, backup_id = archiving_instance(services, wait), missing_id()
        services.guest.stop_db(instance_id)
        wait.service(services, instance_id, ServiceStatus.SHUTDOWN)
        repository(services).start_backup(instance_id, backup_id)
        progress = finished(services, wait, instance_id, backup_id)
        assert progress.state is BackupState.FAILED and progress.error, progress
        assert repository(services).list_backup_sets(instance_id) == ()

    def test_an_unknown_backup_or_instance(self, services: Services, wait: Wait) -> None:
        instance_id = archiving_instance(services, wait)
        progress = repository(services).backup_progress(instance_id, missing_id())
        assert progress.state is BackupState.FAILED and progress.error
        assert repository(services).list_backup_sets(missing_id()) == ()
        assert repository(services).restorable_window(missing_id()) is None
