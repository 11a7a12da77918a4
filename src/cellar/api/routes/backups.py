"""`/backups` as python-troveclient's `openstack database backup ...` sends it: create
(202, NEW), list (filters `instance_id`, `datastore`), show, delete (202), and
`GET /instances/{id}/backups`. A backup is a guest task, the same under every resource
manager: the task manager has the repository take it (pgBackRest) while the instance
shows BACKUP; other actions get 422 meanwhile.

Order of checks for a create: the body (400), the instance (404), the backend's
repository (501), the parent (400), the instance's state (422), then its task as a
compare-and-set (409 on a race)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Response
from sqlalchemy.orm import Session

from cellar.api.auth import Ctx
from cellar.api.deps import State
from cellar.api.quota_checks import check_backup
from cellar.api.schemas import BackupCreateRequest
from cellar.api.validation import parse
from cellar.api.views.backups import BackupEnvelope, BackupList, backup_view
from cellar.db import backups as repo
from cellar.db import catalog
from cellar.db import instances as instances_repo
from cellar.db.engine import transaction
from cellar.db.instances import utcnow
from cellar.db.jobs import submit_job
from cellar.db.models import Backup
from cellar.domain.backups import BackupStatus, archive_id, stanza_name
from cellar.domain.errors import BadRequest, Conflict, NotFound, OperationIsNotSupported
from cellar.taskmanager.backup_schedule import submit_backup
from cellar.taskmanager.kinds import JobKind

router = APIRouter(tags=["backups"])


@router.post("/backups", status_code=202)
def create_backup(ctx: Ctx, state: State, body: Annotated[Any, Body()] = None) -> BackupEnvelope:
    request = parse(BackupCreateRequest, body, "").backup
    with transaction(state.sessions) as session:
        instance = instances_repo.get_instance(
            session, instance_id=request.instance, project_id=ctx.tenant_id
        )
    if state.backups() is None:
        raise OperationIsNotSupported("backups", f"the {state.settings.backend} backend")
    with transaction(state.sessions) as session:
        stanza = stanza_name(archive_id(instance.id, instance.cluster_id))
        parent = _parent(session, request.parent_id, bool(request.incremental), stanza)
        check_backup(session, project_id=instance.tenant_id, settings=state.settings)
        row = submit_backup(
            session,
            instance=instance,
            name=request.name,
            description=request.description,
            parent=parent,
        )
        view = backup_view(row, _label(session, row))
    return BackupEnvelope(backup=view)


def _parent(
    session: Session, parent_id: str | None, incremental: bool, stanza: str
) -> Backup | None:
    """The backup an incremental one is taken on: the one named, or the last completed
    one of the instance's stanza (its group's, for a member); none (a full backup) when
    there is none, as Trove does."""
    if parent_id is not None:
        try:
            parent = repo.get_backup(session, backup_id=parent_id)
        except NotFound:
            raise BadRequest("backup.parent_id", f"no backup {parent_id!r}") from None
        if parent.stanza != stanza:
            raise BadRequest("backup.parent_id", f"backup {parent_id} is of another instance")
        if parent.state != BackupStatus.COMPLETED.value:
            raise BadRequest("backup.parent_id", f"backup {parent_id} is {parent.state}")
        return parent
    return repo.last_completed(session, stanza=stanza) if incremental else None


@router.get("/backups")
def list_backups(
    ctx: Ctx, state: State, instance_id: str | None = None, datastore: str | None = None
) -> BackupList:
    with transaction(state.sessions, readonly=True) as session:
        versions = None
        if datastore is not None:
            found = catalog.get_datastore(session, id_or_name=datastore)
            versions = [v.id for v in catalog.list_versions(session, datastore_id=found.id)]
        rows = repo.list_backups(
            session, project_id=ctx.tenant_id, instance_id=instance_id, version_ids=versions
        )
        return BackupList(backups=[backup_view(r, _label(session, r)) for r in rows])


@router.get("/instances/{instance_id}/backups")
def instance_backups(instance_id: str, ctx: Ctx, state: State) -> BackupList:
    with transaction(state.sessions, readonly=True) as session:
        instances_repo.get_instance(session, instance_id=instance_id, project_id=ctx.scope)
        rows = repo.list_backups(session, project_id=None, instance_id=instance_id)
        return BackupList(backups=[backup_view(r, _label(session, r)) for r in rows])


@router.get("/backups/{backup_id}")
def show_backup(backup_id: str, ctx: Ctx, state: State) -> BackupEnvelope:
    with transaction(state.sessions, readonly=True) as session:
        row = repo.get_backup(session, backup_id=backup_id, project_id=ctx.scope)
        return BackupEnvelope(backup=backup_view(row, _label(session, row)))


@router.delete("/backups/{backup_id}", status_code=202)
def delete_backup(backup_id: str, ctx: Ctx, state: State) -> Response:
    """Refused while the backup is being taken, while an incremental one depends on it
    (delete those first), or when it is its instance's only full backup (pgBackRest keeps
    one); a failed backup holds nothing and goes at once."""
    with transaction(state.sessions) as session:
        row = repo.get_backup(session, backup_id=backup_id, project_id=ctx.scope)
        if row.state in (BackupStatus.NEW.value, BackupStatus.BUILDING.value):
            raise Conflict(f"Backup {backup_id} is {row.state}: wait until it ends.")
        dependents = repo.children(session, backup_id=row.id)
        if dependents:
            names = ", ".join(d.id for d in dependents)
            raise Conflict(
                f"Backup {backup_id} has incremental backups taken on it ({names}): "
                "delete them first."
            )
        fulls = [
            b for b in repo.list_backups(session, project_id=None, instance_id=row.instance_id)
            if b.parent_id is None and b.state == BackupStatus.COMPLETED.value
        ]  # fmt: skip
        if row.label is not None and row.parent_id is None and [b.id for b in fulls] == [row.id]:
            # pgBackRest keeps a stanza's last full backup (its WAL hangs on it).
            raise Conflict(
                f"Backup {backup_id} is the only full backup of instance {row.instance_id}: "
                "the repository keeps it until another full backup exists; take one first."
            )
        if row.label is None:
            repo.update_backup(session, backup_id=row.id, state=BackupStatus.DELETED.value,
                               deleted=True, deleted_at=utcnow())  # fmt: skip
            return Response(status_code=202)
        submit_job(
            session, kind=JobKind.DELETE_BACKUP.value, instance_id=row.id,
            args={"backup_id": row.id},
        )  # fmt: skip
    return Response(status_code=202)


def _label(session: Session, row: Backup) -> tuple[str, str]:
    labels = catalog.version_labels(session, version_ids=[row.datastore_version_id])
    return labels[row.datastore_version_id]


def _new_id() -> str:
    return str(uuid.uuid4())
