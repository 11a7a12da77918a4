"""The fake backup repository: pgBackRest's stanzas and backup sets as rows of the fake cloud.

It refuses what `cellar.localcloud.backups` refuses:

- A stanza (`stanza_name(instance id)`) is registered for its project by
  `repository_access` (the instance's server must exist) and made by `create_stanza`
  once the instance's guest, prepared with that access, runs. It outlives the instance.
- A backup is one row per backup id. It is taken for the cloud's latency, then its set is
  in the stanza (`stopped_at`: when it completed), unless the datastore was not running
  at its start or at a look while it ran (FAILED with the reason, as pgBackRest's backup
  of a stopped database fails). One backup at a time per stanza (pgBackRest's lock); an
  incremental one on the newest set, or full if there is none; labels as pgBackRest
  makes them. LSNs are the guest's WAL position at the start (`set_wal`).
- WAL is archived while the guest prepared with the stanza runs. The fake knows that it
  runs only when it looks (every call about the stanza), so once the guest is stopped or
  gone the window ends at the last look; the real one ends at the last archived commit.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime

from cellar.domain.backups import (
    BackupProgress,
    BackupSet,
    BackupState,
    BackupType,
    RepositoryAccess,
    RestorableWindow,
    RestoreTarget,
    stanza_name,
)
from cellar.domain.replication import Role
from cellar.domain.specs import resource_name
from cellar.domain.status import ServiceStatus
from cellar.drivers.backup.base import BackupDriver, BackupError, BackupSetInUse
from cellar.drivers.fake.cloud import FakeCloud
from cellar.drivers.fake.guest import find_guest, service_now, wal_in
from cellar.drivers.fake.store import JSON, SERVER, Row, Tx, pending, settle_in
from cellar.drivers.guest.base import GuestError

STANZA, BACKUP = "stanza", "backup"
_RUNNING, _COMPLETED, _FAILED, _DELETED = "running", "completed", "failed", "deleted"
# An empty PostgreSQL 15 cluster's data directory; what the WAL written adds to it.
_EMPTY_CLUSTER_BYTES = 23 * 2**20
# lz4 on a database's pages; a set's manifest and the like.
_COMPRESSION = 4
_MANIFEST_BYTES = 16 * 2**10


def _stanza_id(stanza: str) -> str:
    return f"stanza:{stanza}"


def _backup_id(backup_id: str) -> str:
    return f"backup:{backup_id}"


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _state(backup: Row, now: float) -> str:
    return pending(backup.data, now) or str(backup.data["state"])


def _sets(tx: Tx, stanza: str) -> list[Row]:
    """The stanza's completed backups, oldest first."""
    return [b for b in tx.children(BACKUP, stanza) if _state(b, tx.now) == _COMPLETED]


def _to_backup_set(backup: Row) -> BackupSet:
    d = backup.data
    return BackupSet(
        label=d["label"],
        type=BackupType(d["type"]),
        parent_label=d.get("parent"),
        started_at=_utc(d["started_at"]),
        stopped_at=_utc(d["stopped_at"]),
        start_lsn=d["start_lsn"],
        stop_lsn=d["stop_lsn"],
        database_size_bytes=d["database_size"],
        repository_size_bytes=d["repository_size"],
        backup_id=backup.name,
    )


def _primary(tx: Tx, stanza: Row) -> str:
    """The stanza's archiving member: the one not a replica among those prepared with it
    (a group's primary changes with switchovers), or the first it was given to."""
    first = str(stanza.data["instance_id"])
    for member in dict.fromkeys([first, *stanza.data.get("members", [])]):
        guest = find_guest(tx, member)
        if (
            guest is not None
            and guest.data.get("stanza") == stanza.name
            and guest.data.get("role") != Role.REPLICA.value
        ):
            return str(member)
    return first


def _not_running(tx: Tx, stanza: Row, member: str | None = None) -> str | None:
    """Why the stanza's datastore (its primary, or `member`) cannot be reached by the
    repository now, if it cannot."""
    instance_id = member or _primary(tx, stanza)
    guest = find_guest(tx, instance_id)
    if guest is None or guest.data.get("stanza") != stanza.name:
        return f"instance {instance_id} has no datastore archiving into stanza {stanza.name}"
    status = service_now(tx, guest)
    if status is not ServiceStatus.RUNNING:
        return f"the datastore of instance {instance_id} is {status.value}: cannot connect to it"
    return None


def _look(tx: Tx, stanza: Row) -> Row:
    """What the repository sees now: a made stanza's running datastore archives (its last
    sighting is kept), and a backup running without it fails."""
    reason = _not_running(tx, stanza)
    if reason is None and "created_at" in stanza.data:
        stanza = tx.update(stanza.changed(seen_at=tx.now))
    if reason is not None:
        for backup in tx.children(BACKUP, stanza.name):
            if pending(backup.data, tx.now) is not None:
                error = f"the backup was interrupted: {reason}"
                tx.update(backup.changed(state=_FAILED, error=error, pending=None, until=None))
    return stanza


def _window(tx: Tx, stanza: Row) -> RestorableWindow | None:
    stanza = _look(tx, stanza)
    sets = _sets(tx, stanza.name)
    if not sets:
        return None
    until = max(sets[-1].data["stopped_at"], stanza.data.get("seen_at", 0.0))
    return RestorableWindow.of_archive(_utc(sets[0].data["stopped_at"]), _utc(until))


def _label(tx: Tx, stanza: str, parent: Row | None) -> tuple[str, int]:
    """pgBackRest's label and the second it names, a later one than any before it."""
    seconds = [int(b.data["label_at"]) for b in tx.children(BACKUP, stanza) if "label_at" in b.data]
    at = max([int(tx.now), *(s + 1 for s in seconds)])
    stamp = _utc(at).strftime("%Y%m%d-%H%M%S")
    if parent is None:
        return f"{stamp}F", at
    return f"{parent.data['label'].split('_')[0]}_{stamp}I", at


class FakeBackup(BackupDriver):
    name = "fake-backup"

    def __init__(self, cloud: FakeCloud) -> None:
        self._cloud = cloud

    def _call(self, method: str) -> AbstractContextManager[Tx]:
        return self._cloud.call(f"backup.{method}")

    def repository_access(
        self, project_id: str, archive: str, *, member: str | None = None
    ) -> RepositoryAccess:
        instance_id = member or archive
        with self._call("repository_access") as tx:
            if not tx.by_name(SERVER, resource_name(instance_id)):
                raise BackupError(f"Instance {instance_id} has no server to archive from.")
            stanza = stanza_name(archive)
            existing = tx.get(STANZA, _stanza_id(stanza))
            if existing is not None and existing.parent != project_id:
                raise BackupError(f"Stanza {stanza} belongs to another project.")
            if existing is None:
                data = {"instance_id": instance_id, "members": [instance_id]}
                tx.insert(Row(_stanza_id(stanza), STANZA, stanza, project_id, data))
            elif instance_id not in existing.data.get("members", []):
                members = [*existing.data.get("members", []), instance_id]
                tx.update(existing.changed(members=members))
            options = {"repo1-type": "fake", "repo1-path": f"/fake-repository/{project_id}"}
            return RepositoryAccess(stanza, options=options)

    def create_stanza(self, archive: str, *, primary: str | None = None) -> None:
        with self._call("create_stanza") as tx:
            stanza = self._stanza(tx, archive)
            if "created_at" in stanza.data:
                return
            reason = _not_running(tx, stanza, primary)
            if reason is not None:
                raise BackupError(f"pgbackrest stanza-create failed: {reason}.")
            tx.update(stanza.changed(created_at=tx.now, seen_at=tx.now))

    def start_backup(
        self, archive: str, backup_id: str, *, incremental: bool = False,
        source: str | None = None, primary: str | None = None,
    ) -> None:  # fmt: skip
        with self._call("start_backup") as tx:
            if tx.get(BACKUP, _backup_id(backup_id)) is not None:
                return
            stanza = _look(tx, self._stanza(tx, archive))
            data: JSON = {"instance_id": archive, "started_at": tx.now}
            reason = self._refusal(tx, stanza, source)
            if reason is None:
                data.update(self._taken(tx, stanza, incremental))
            else:
                data.update(state=_FAILED, error=reason)
            tx.insert(Row(_backup_id(backup_id), BACKUP, backup_id, stanza.name, data))

    def _refusal(self, tx: Tx, stanza: Row, source: str | None) -> str | None:
        """Why pgBackRest's backup of the stanza (from `source`) would fail now, if it
        would: a backup from a standby needs the primary as well."""
        if "created_at" not in stanza.data:
            return f"stanza {stanza.name} does not exist: it was never created"
        for member in dict.fromkeys([None, source]):
            reason = _not_running(tx, stanza, member)
            if reason is not None:
                return reason
        if any(pending(b.data, tx.now) for b in tx.children(BACKUP, stanza.name)):
            return f"another backup of stanza {stanza.name} is running (its lock is held)"
        return None

    def _taken(self, tx: Tx, stanza: Row, incremental: bool) -> JSON:
        """A backup's data: completed once the latency has passed."""
        sets = _sets(tx, stanza.name)
        parent = sets[-1] if incremental and sets else None
        guest = find_guest(tx, _primary(tx, stanza))
        lsn = 0 if guest is None else wal_in(tx, guest)
        database = _EMPTY_CLUSTER_BYTES + lsn
        if parent is None:
            written = database // _COMPRESSION
        else:
            written = max(0, lsn - parent.data["stop_lsn"]) // _COMPRESSION + _MANIFEST_BYTES
        label, label_at = _label(tx, stanza.name, parent)
        latency = self._cloud.latency_s
        return {
            "type": (BackupType.FULL if parent is None else BackupType.INCREMENTAL).value,
            "label": label,
            "label_at": label_at,
            "parent": None if parent is None else parent.data["label"],
            "stopped_at": tx.now + latency,
            "start_lsn": lsn,
            "stop_lsn": lsn,
            "database_size": database,
            "repository_size": written,
            "state": _COMPLETED,
            **settle_in(_RUNNING, tx.now, latency),
        }

    def backup_progress(self, instance_id: str, backup_id: str) -> BackupProgress:
        with self._call("backup_progress") as tx:
            backup = tx.get(BACKUP, _backup_id(backup_id))
            if backup is None or backup.data["instance_id"] != instance_id:
                return BackupProgress(
                    BackupState.FAILED, error=f"no backup {backup_id} was started"
                )
            stanza = tx.get(STANZA, _stanza_id(str(backup.parent)))
            if stanza is not None:
                _look(tx, stanza)
                backup = tx.get(BACKUP, _backup_id(backup_id)) or backup
            d, state = backup.data, _state(backup, tx.now)
            if state == _RUNNING:
                taken = (tx.now - d["started_at"]) / max(d["until"] - d["started_at"], 1e-9)
                return BackupProgress(BackupState.RUNNING, round(min(99.9, 100.0 * taken), 1))
            if state == _COMPLETED:
                return BackupProgress(BackupState.COMPLETED, 100.0, _to_backup_set(backup))
            if state == _DELETED:
                return BackupProgress(BackupState.FAILED, error="the backup set is gone (deleted)")
            return BackupProgress(BackupState.FAILED, error=str(d["error"]))

    def list_backup_sets(self, instance_id: str) -> tuple[BackupSet, ...]:
        with self._call("list_backup_sets") as tx:
            stanza = tx.get(STANZA, _stanza_id(stanza_name(instance_id)))
            if stanza is None:
                return ()
            _look(tx, stanza)
            return tuple(_to_backup_set(b) for b in _sets(tx, stanza.name))

    def restorable_window(self, instance_id: str) -> RestorableWindow | None:
        with self._call("restorable_window") as tx:
            stanza = tx.get(STANZA, _stanza_id(stanza_name(instance_id)))
            return None if stanza is None else _window(tx, stanza)

    def delete_backup_set(self, instance_id: str, label: str) -> None:
        with self._call("delete_backup_set") as tx:
            stanza = tx.get(STANZA, _stanza_id(stanza_name(instance_id)))
            if stanza is None:
                return
            _look(tx, stanza)
            sets = _sets(tx, stanza.name)
            found = [b for b in sets if b.data["label"] == label]
            if not found:
                return
            if any(pending(b.data, tx.now) for b in tx.children(BACKUP, stanza.name)):
                raise BackupError(
                    f"Backup set {label} cannot be deleted while a backup of stanza "
                    f"{stanza.name} runs."
                )
            parents = {b.data["label"]: b.data.get("parent") for b in sets}
            dependents = tuple(s for s in parents if label in _chain(parents, s)[1:])
            if dependents:
                raise BackupSetInUse(label, dependents)
            tx.update(found[0].changed(state=_DELETED))

    def expire(
        self, instance_id: str, *, keep_full: int | None = None, keep_days: int | None = None
    ) -> None:
        """pgBackRest's retention: full sets beyond the newest `keep_full` (or older than
        `keep_days`) go, with the incrementals on them; the newest full set stays."""
        if (keep_full is None) == (keep_days is None):
            raise BackupError("expire needs exactly one of keep_full and keep_days")
        with self._call("expire") as tx:
            stanza = self._stanza(tx, instance_id)
            sets = _sets(tx, stanza.name)
            fulls = [b for b in sets if b.data["type"] == BackupType.FULL.value]
            if keep_full is not None:
                expired = fulls[: max(0, len(fulls) - keep_full)]
            else:
                limit = tx.now - (keep_days or 0) * 86400
                expired = [b for b in fulls[:-1] if b.data["stopped_at"] < limit]
            gone = {b.data["label"] for b in expired}
            parents = {b.data["label"]: b.data.get("parent") for b in sets}
            for found in sets:
                if gone & set(_chain(parents, found.data["label"])):
                    tx.update(found.changed(state=_DELETED))

    def _stanza(self, tx: Tx, instance_id: str) -> Row:
        stanza = tx.get(STANZA, _stanza_id(stanza_name(instance_id)))
        if stanza is None:
            raise BackupError(f"No stanza {stanza_name(instance_id)} in the backup repository.")
        return stanza


def _chain(parents: dict[str, str | None], label: str) -> list[str]:
    """The label and the sets it depends on, newest first."""
    chain = [label]
    while (parent := parents.get(chain[-1])) is not None:
        chain.append(parent)
    return chain


def restored(
    tx: Tx, instance_id: str, repository: RepositoryAccess, restore: RestoreTarget
) -> JSON:
    """The guest data of a restore (`FakeGuest.prepare_with_repository`), checked as the
    repository and pgBackRest's restore would: the source stanza exists and belongs to the
    project of `repository`, the set exists, the instant is inside the window. The guest's
    WAL position becomes the end of the set it restores (replay after it is not modelled)."""
    refused = f"Cannot restore instance {instance_id} from stanza {restore.stanza}"
    own = tx.get(STANZA, _stanza_id(repository.stanza))
    source = tx.get(STANZA, _stanza_id(restore.stanza))
    if own is None:
        raise GuestError(f"{refused}: the repository does not know stanza {repository.stanza}.")
    if source is None or "created_at" not in source.data:
        raise GuestError(f"{refused}: no such stanza in the backup repository.")
    if source.parent != own.parent:
        raise GuestError(f"{refused}: access denied (another project's stanza).")
    window = _window(tx, source)
    sets = _sets(tx, source.name)
    if not sets:
        raise GuestError(f"{refused}: it has no backup set.")
    when = restore.target_time
    # pgBackRest's choice without a label: the newest set ended by the instant.
    chosen = [b for b in sets if when is None or _utc(b.data["stopped_at"]) <= when][-1:]
    if restore.label is not None:
        chosen = [b for b in sets if b.data["label"] == restore.label]
        if not chosen:
            raise GuestError(f"{refused}: no backup set {restore.label}.")
    if when is not None and (
        window is None
        or when not in window
        or not chosen
        or when < _utc(chosen[0].data["stopped_at"])
    ):
        raise GuestError(f"{refused}: {when.isoformat()} is not restorable.")
    target = None if when is None else when.isoformat()
    return {
        "lsn": chosen[0].data["stop_lsn"],
        "restored_from": {
            "stanza": source.name,
            "label": chosen[0].data["label"],
            "target_time": target,
        },
    }
