"""The fake backup repository beyond the contract: time taken, WAL positions, restores into
new guests, projects kept apart, a deleted instance's stanza, faults."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from contract_backup import PROJECT, archiving_instance, finished, opened, repository, taken
from contract_support import IMAGE, SMALL, Wait, active_server, instance_spec, missing_id

from cellar.domain.backups import BackupState, RepositoryAccess, RestoreTarget, stanza_name
from cellar.domain.specs import resource_name
from cellar.domain.status import ServerStatus, ServiceStatus
from cellar.drivers.backup.base import BackupError
from cellar.drivers.base import ServiceUnavailable
from cellar.drivers.fake import FakeCloud, fake_services
from cellar.drivers.fake.guest import set_wal
from cellar.drivers.guest.base import GuestError
from cellar.drivers.registry import Services

LATENCY_S = 0.3


@pytest.fixture
def services(fake_cloud: FakeCloud) -> Services:
    return fake_services(fake_cloud)


@pytest.fixture
def slow(fake_cloud: FakeCloud) -> Iterator[Services]:
    """The same cloud, each call and each backup taking `LATENCY_S`."""
    cloud = FakeCloud(fake_cloud.path, latency_s=LATENCY_S)
    yield fake_services(cloud)
    cloud.close()


def new_server(services: Services, wait: Wait, instance_id: str) -> str:
    server = services.compute.create_server(
        name=resource_name(instance_id), flavor=SMALL, image=IMAGE
    )
    return wait.server(services, server.id, ServerStatus.ACTIVE).id


def restore_into(
    services: Services, wait: Wait, target: RestoreTarget, project: str = PROJECT
) -> str:
    """A new instance prepared from `target`: its id."""
    instance_id = missing_id()
    server_id = new_server(services, wait, instance_id)
    access = repository(services).repository_access(project, instance_id)
    services.guest.prepare_with_repository(
        instance_id,
        server_id=server_id,
        spec=instance_spec(instance_id),
        repository=access,
        restore=target,
    )
    return instance_id


def test_a_backup_runs_for_the_latency(services: Services, slow: Services, wait: Wait) -> None:
    instance_id, backup_id = archiving_instance(services, wait), missing_id()
    repository(slow).start_backup(instance_id, backup_id)
    running = repository(services).backup_progress(instance_id, backup_id)
    assert running.state is BackupState.RUNNING and running.percent is not None
    assert 0 <= running.percent < 100
    other = missing_id()
    repository(services).start_backup(instance_id, other)  # pgBackRest's lock is held
    refused = repository(services).backup_progress(instance_id, other)
    assert refused.state is BackupState.FAILED and "running" in str(refused.error)
    done = finished(services, wait, instance_id, backup_id)
    assert done.backup_set is not None
    duration = done.backup_set.stopped_at - done.backup_set.started_at
    assert duration == timedelta(seconds=LATENCY_S)


def test_a_datastore_stopped_during_a_backup_fails_it(
    services: Services, slow: Services, wait: Wait
) -> None:
    instance_id, backup_id = archiving_instance(services, wait), missing_id()
    repository(slow).start_backup(instance_id, backup_id)
    services.guest.stop_db(instance_id)
    progress = repository(services).backup_progress(instance_id, backup_id)
    assert progress.state is BackupState.FAILED and "interrupted" in str(progress.error)
    assert finished(services, wait, instance_id, backup_id) == progress


def test_sets_carry_the_guests_wal_positions(
    fake_cloud: FakeCloud, services: Services, wait: Wait
) -> None:
    instance_id = archiving_instance(services, wait)
    set_wal(fake_cloud, instance_id, 0x3000000)
    full = taken(services, wait, instance_id)
    set_wal(fake_cloud, instance_id, 0x5000000)
    incremental = taken(services, wait, instance_id, incremental=True)
    assert (full.start_lsn, incremental.start_lsn) == (0x3000000, 0x5000000)
    assert incremental.repository_size_bytes < full.repository_size_bytes


def test_the_stanza_needs_a_guest_archiving_into_it(services: Services, wait: Wait) -> None:
    instance_id = missing_id()
    with pytest.raises(BackupError, match="no server"):
        repository(services).repository_access(PROJECT, instance_id)
    server_id = new_server(services, wait, instance_id)
    repository(services).repository_access(PROJECT, instance_id)
    services.guest.prepare(instance_id, server_id=server_id, spec=instance_spec(instance_id))
    wait.service(services, instance_id, ServiceStatus.RUNNING)
    with pytest.raises(BackupError, match="archiving"):
        repository(services).create_stanza(instance_id)
    backup_id = missing_id()
    repository(services).start_backup(instance_id, backup_id)
    progress = repository(services).backup_progress(instance_id, backup_id)
    assert progress.state is BackupState.FAILED and "never created" in str(progress.error)
    with pytest.raises(BackupError, match="No stanza"):
        repository(services).start_backup(missing_id(), missing_id())


def test_restore_into_a_new_instance(services: Services, wait: Wait) -> None:
    source = archiving_instance(services, wait)
    full = taken(services, wait, source)
    restored = restore_into(
        services, wait, repository(services).restore_target(source, label=full.label)
    )
    wait.service(services, restored, ServiceStatus.RUNNING)
    repository(services).create_stanza(restored)
    assert repository(services).list_backup_sets(restored) == ()
    assert taken(services, wait, restored).start_lsn == full.stop_lsn


@pytest.mark.parametrize("case", ["unknown stanza", "unknown set", "outside", "no set"])
def test_a_restore_is_refused_by_the_guest(services: Services, wait: Wait, case: str) -> None:
    source = archiving_instance(services, wait)
    if case != "no set":
        taken(services, wait, source)
    stanza, later = stanza_name(source), datetime.now(UTC) + timedelta(hours=1)
    target = {
        "unknown stanza": RestoreTarget(stanza_name(missing_id())),
        "unknown set": RestoreTarget(stanza, label="20200101-000000F"),
        "outside": RestoreTarget(stanza, target_time=later),
        "no set": RestoreTarget(stanza),
    }[case]
    with pytest.raises(GuestError):
        restore_into(services, wait, target)


def test_another_projects_stanza_is_refused(services: Services, wait: Wait) -> None:
    source = archiving_instance(services, wait, project="contract-project-a")
    taken(services, wait, source)
    with pytest.raises(GuestError, match="access denied"):
        restore_into(services, wait, RestoreTarget(stanza_name(source)), "contract-project-b")


def test_a_deleted_instances_stanza_restores_up_to_its_last_archive(
    services: Services, wait: Wait
) -> None:
    source = archiving_instance(services, wait)
    full = taken(services, wait, source)
    seen = opened(services, wait, source)
    server = services.compute.find_server(resource_name(source))
    assert server is not None
    services.compute.delete_server(server.id)
    services.guest.forget(source)
    gone = repository(services).restorable_window(source)
    assert gone is not None and gone.restorable_until >= seen.restorable_until
    assert repository(services).restorable_window(source) == gone
    target = repository(services).restore_target(source, target_time=gone.restorable_until)
    restored = restore_into(services, wait, target)
    wait.service(services, restored, ServiceStatus.RUNNING)
    assert repository(services).list_backup_sets(source) == (full,)


def test_backup_calls_can_be_faulted(fake_cloud: FakeCloud, services: Services, wait: Wait) -> None:
    instance_id, backup_id = archiving_instance(services, wait), missing_id()
    fake_cloud.inject_fault("backup.start_backup", transient=True)
    with pytest.raises(ServiceUnavailable):
        repository(services).start_backup(instance_id, backup_id)
    assert repository(services).backup_progress(instance_id, backup_id).error
    fake_cloud.inject_fault("backup.list_backup_sets")
    with pytest.raises(BackupError, match="Injected"):
        repository(services).list_backup_sets(instance_id)
    repository(services).start_backup(instance_id, backup_id)
    assert finished(services, wait, instance_id, backup_id).state is BackupState.COMPLETED


def test_a_restore_needs_an_access_the_repository_gave(services: Services, wait: Wait) -> None:
    source = archiving_instance(services, wait)
    taken(services, wait, source)
    server = active_server(services, wait)
    with pytest.raises(GuestError, match="does not know"):
        services.guest.prepare_with_repository(
            "i-1",
            server_id=server.id,
            spec=instance_spec("i-1"),
            repository=RepositoryAccess("cellar-never-given"),
            restore=RestoreTarget(stanza_name(source)),
        )
    assert services.guest.status("i-1").service is ServiceStatus.NEW
