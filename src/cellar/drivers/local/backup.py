"""The backup driver of the local cloud: its pgBackRest repository (`cellar.localcloud.backups`).

An instance's guest is reached where its server is (the server row named after the
instance: address, data directory); its datastore listens on 5432, as every local
server's does. See the repository's module for the topology and what was measured.
"""

from __future__ import annotations

import time
from pathlib import Path

from cellar.config import Settings
from cellar.domain.backups import BackupProgress, BackupSet, RepositoryAccess, RestorableWindow
from cellar.domain.backups import stanza_name as _stanza
from cellar.domain.specs import resource_name
from cellar.drivers.backup.base import BackupDriver, BackupError, BackupSetInUse
from cellar.guest.pgfiles import socket_dir_for
from cellar.localcloud.backups import BackupRepository
from cellar.localcloud.network import SERVER
from cellar.localcloud.state import CloudState
from cellar.localcloud.system import LocalCloudError

DATASTORE_PORT = 5432


STANZA_ATTEMPTS = 5
STANZA_RETRY_S = 1.0


class LocalBackupDriver(BackupDriver):
    name = "local-backup"

    def __init__(self, settings: Settings, *, repository: BackupRepository | None = None) -> None:
        self.settings = settings
        self._repository = repository

    @property
    def repository(self) -> BackupRepository:
        if self._repository is None:
            state = CloudState(self.settings.local_root / "state.sqlite")
            self._repository = BackupRepository(self.settings, state)
        return self._repository

    def repository_access(
        self, project_id: str, archive: str, *, member: str | None = None
    ) -> RepositoryAccess:
        instance_id = member or archive
        found = self.repository.state.find(SERVER, resource_name(instance_id))
        if not found or "address" not in found[0].data:
            raise BackupError(f"Instance {instance_id} has no server to archive from.")
        data_dir = Path(found[0].data["data_dir"])
        try:
            return self.repository.access(
                project_id, archive, address=found[0].data["address"], data_dir=data_dir,
                port=DATASTORE_PORT, socket_dir=socket_dir_for(data_dir, DATASTORE_PORT),
                member=instance_id,
            )  # fmt: skip
        except LocalCloudError as exc:
            raise BackupError(str(exc)) from exc

    def create_stanza(self, archive: str, *, primary: str | None = None) -> None:
        # The repository's server reloads its configuration when another instance gets
        # its access (SIGHUP): a stanza-create during that moment fails; tried again.
        for attempt in range(STANZA_ATTEMPTS):
            try:
                self.repository.create_stanza(_stanza(archive), primary or archive)
                return
            except LocalCloudError as exc:
                if attempt == STANZA_ATTEMPTS - 1:
                    raise BackupError(str(exc)) from exc
                time.sleep(STANZA_RETRY_S)

    def start_backup(
        self, archive: str, backup_id: str, *, incremental: bool = False,
        source: str | None = None, primary: str | None = None,
    ) -> None:  # fmt: skip
        try:
            self.repository.start_backup(
                _stanza(archive), backup_id, incremental=incremental,
                primary=primary or archive, source=source or primary or archive,
            )  # fmt: skip
        except LocalCloudError as exc:
            raise BackupError(str(exc)) from exc

    def backup_progress(self, instance_id: str, backup_id: str) -> BackupProgress:
        return self.repository.backup_progress(_stanza(instance_id), backup_id)

    def list_backup_sets(self, instance_id: str) -> tuple[BackupSet, ...]:
        return self.repository.backup_sets(_stanza(instance_id))

    def restorable_window(self, instance_id: str) -> RestorableWindow | None:
        return self.repository.window(_stanza(instance_id))

    def expire(
        self, instance_id: str, *, keep_full: int | None = None, keep_days: int | None = None
    ) -> None:
        try:
            self.repository.expire(_stanza(instance_id), keep_full=keep_full, keep_days=keep_days)
        except LocalCloudError as exc:
            raise BackupError(str(exc)) from exc

    def delete_backup_set(self, instance_id: str, label: str) -> None:
        dependents = self.repository.delete_set(_stanza(instance_id), label)
        if dependents:
            raise BackupSetInUse(label, dependents)
