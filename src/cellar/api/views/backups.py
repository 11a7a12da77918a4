"""Trove's backup view (`trove/backup/views.py`): size in GB, the datastore with its
version id, `locationRef` (here the pgBackRest stanza and set: `<stanza>/<label>`)."""

from __future__ import annotations

from cellar.api.views.common import View, isotime
from cellar.db.models import Backup


class BackupDatastore(View):
    type: str
    version: str
    version_id: str


class BackupView(View):
    id: str
    name: str
    description: str | None
    instance_id: str
    parent_id: str | None
    status: str
    size: float | None
    datastore: BackupDatastore
    created: str | None
    updated: str | None
    locationRef: str | None
    fail_reason: str | None = None


class BackupEnvelope(View):
    backup: BackupView


class BackupList(View):
    backups: list[BackupView]


def backup_view(row: Backup, label: tuple[str, str]) -> BackupView:
    size = None if row.size_bytes is None else round(row.size_bytes / 2**30, 3)
    return BackupView(
        id=row.id,
        name=row.name,
        description=row.description,
        instance_id=row.instance_id,
        parent_id=row.parent_id,
        status=row.state,
        size=size,
        datastore=BackupDatastore(
            type=label[0], version=label[1], version_id=row.datastore_version_id
        ),
        created=isotime(row.created),
        updated=isotime(row.updated),
        locationRef=f"{row.stanza}/{row.label}" if row.label else None,
        fail_reason=row.fail_reason,
    )
