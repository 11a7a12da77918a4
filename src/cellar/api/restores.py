"""`restorePoint` on instance create: from a backup (Trove's `backupRef`: the data as of
the end of that backup), and beyond Trove to a point in time (`restoreTime`, RFC 3339)
from a backup or from an instance's archive (`instance`, which may have been deleted:
its stanza is kept). The instant must lie in the source's restorable window (from the end
of its oldest backup to its last archived commit); the answer otherwise says the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cellar.api.schemas import RestorePoint
from cellar.db import backups as backups_repo
from cellar.db.models import Backup, Instance
from cellar.domain.backups import (
    BackupStatus,
    RestorableWindow,
    archive_id,
    archive_of_stanza,
    stanza_name,
)
from cellar.domain.errors import BadRequest, NotFound, OperationIsNotSupported
from cellar.drivers.backup.base import BackupDriver
from cellar.drivers.base import DriverError

FIELD = "instance.restorePoint"


@dataclass(frozen=True)
class Restore:
    """What a new instance is restored from, checked."""

    source_instance_id: str
    version_id: str
    stanza: str
    label: str | None
    target_time: datetime | None
    # The smallest volume the data fits on, in GB (the backup's database size), if known.
    min_volume_gb: int | None


def resolve(
    session: Session,
    *,
    point: RestorePoint,
    project_id: str,
    backups: BackupDriver | None,
    backend: str,
) -> Restore:
    if backups is None:
        raise OperationIsNotSupported("restore", f"the {backend} backend")
    if (point.backupRef is None) == (point.instance is None):
        raise BadRequest(FIELD, "give either backupRef or instance (with restoreTime)")
    instant = _instant(point.restoreTime) if point.restoreTime is not None else None
    if point.backupRef is not None:
        row = _backup(session, point.backupRef, project_id)
        source, version_id, label = row.instance_id, row.datastore_version_id, row.label
        archive = archive_of_stanza(row.stanza)
        size = row.size_bytes
        ended = None if row.stopped_at is None else row.stopped_at.replace(tzinfo=UTC)
        if instant is not None and ended is not None and instant < ended:
            raise BadRequest(
                f"{FIELD}.restoreTime",
                f"{rfc3339(instant)} is before backup {row.id} ended ({rfc3339(ended)})",
            )
    else:
        if instant is None:
            raise BadRequest(f"{FIELD}.restoreTime", "is required with instance")
        found = _instance(session, point.instance or "", project_id)
        source, version_id, label, size = found.id, found.datastore_version_id, None, None
        archive = archive_id(found.id, found.cluster_id)
    if instant is not None:
        window = _window(backups, archive)
        if window is None or instant not in window:
            opening = window is None and backups_repo.last_completed(
                session, stanza=stanza_name(archive)
            )
            raise BadRequest(f"{FIELD}.restoreTime", _outside(instant, window, bool(opening)))
    if label is None and instant is not None:
        # The set to start from is one the control plane saw COMPLETED (taken and
        # checked), not whatever the repository holds: the newest that ended in a second
        # before the instant's (pgBackRest stamps whole seconds, and a set that ended in
        # the instant's own second may not be consistent yet at the instant).
        base = backups_repo.last_completed(
            session, stanza=stanza_name(archive), before=instant.replace(microsecond=0, tzinfo=None)
        )
        if base is None:
            raise BadRequest(
                f"{FIELD}.restoreTime", f"{rfc3339(instant)}: no completed backup ended before it"
            )
        label, size = base.label, base.size_bytes
    min_gb = None if size is None else max(1, -(-size // 2**30))
    return Restore(source, version_id, stanza_name(archive), label, instant, min_gb)


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{FIELD}.restoreTime", f"{text!r} is not an RFC 3339 timestamp") from None
    if value.tzinfo is None:
        raise BadRequest(f"{FIELD}.restoreTime", f"{text!r} needs its time zone (Z or +hh:mm)")
    return value.astimezone(UTC)


def _backup(session: Session, ref: str, project_id: str) -> Backup:
    try:
        row = backups_repo.get_backup(session, backup_id=ref, project_id=project_id)
    except NotFound:
        raise BadRequest(f"{FIELD}.backupRef", f"no backup {ref!r}") from None
    if row.state != BackupStatus.COMPLETED.value or row.label is None:
        raise BadRequest(f"{FIELD}.backupRef", f"backup {ref} is {row.state}, not COMPLETED")
    return row


def _instance(session: Session, ref: str, project_id: str) -> Instance:
    """The project's instance by id, deleted ones included (their archive is kept)."""
    row = session.get(Instance, ref)
    if row is None or row.tenant_id != project_id:
        named = list(
            session.scalars(
                select(Instance).where(
                    Instance.tenant_id == project_id,
                    Instance.name == ref,
                    Instance.deleted.is_(False),
                )
            )
        )
        if len(named) != 1:
            raise BadRequest(f"{FIELD}.instance", f"no instance {ref!r}")
        row = named[0]
    return row


def _window(backups: BackupDriver, instance_id: str) -> RestorableWindow | None:
    try:
        return backups.restorable_window(instance_id)
    except DriverError:
        return None


def window_bounds(window: RestorableWindow) -> tuple[str, str]:
    """The window as RFC 3339 timestamps to the millisecond, both inside it (its start
    rounded up, its end down): a user may give either back as a restoreTime."""
    start, end = window.restorable_from.astimezone(UTC), window.restorable_until.astimezone(UTC)
    up = start.replace(microsecond=start.microsecond // 1000 * 1000)
    if up < start:
        up += timedelta(milliseconds=1)
    down = end.replace(microsecond=end.microsecond // 1000 * 1000)
    return (_millis(up), _millis(down))


def _millis(instant: datetime) -> str:
    return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rfc3339(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _outside(instant: datetime, window: RestorableWindow | None, opening: bool = False) -> str:
    if window is None and opening:
        return (
            f"{rfc3339(instant)} cannot be restored: the source's restorable window is not "
            "open yet (it opens in the second after its first backup ended)"
        )
    if window is None:
        return f"{rfc3339(instant)} cannot be restored: the source has no backup yet"
    start, end = window_bounds(window)
    return f"{rfc3339(instant)} is outside the restorable window, {start} to {end}"
