"""`/instances/{id}/backup_schedule` (cellar's own, like RDS's backup window and
retention): automated backups every `interval_hours`, kept by the engine's retention
(`count` full backups, or `days`). PUT sets it (the first one is due one interval from
now), GET shows it with `next_at`, DELETE ends it (the backups stay)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Response

from cellar.api.auth import Ctx
from cellar.api.deps import State
from cellar.api.schemas import BackupScheduleRequest
from cellar.api.validation import parse
from cellar.api.views.common import View, isotime
from cellar.db import instances as instances_repo
from cellar.db.engine import transaction
from cellar.db.instances import utcnow
from cellar.db.models import BackupSchedule
from cellar.domain.errors import NotFound, OperationIsNotSupported

router = APIRouter(tags=["backups"])


class ScheduleView(View):
    instance_id: str
    interval_hours: float
    incremental: bool
    retention: dict[str, int]
    next_at: str | None


class ScheduleEnvelope(View):
    backup_schedule: ScheduleView


def _view(row: BackupSchedule) -> ScheduleEnvelope:
    retention = {"count": row.keep_full} if row.keep_full is not None else {"days": row.keep_days}
    return ScheduleEnvelope(
        backup_schedule=ScheduleView(
            instance_id=row.instance_id,
            interval_hours=row.interval_s / 3600,
            incremental=row.incremental,
            retention={k: int(v) for k, v in retention.items() if v is not None},
            next_at=isotime(row.next_at),
        )
    )


@router.put("/instances/{instance_id}/backup_schedule")
def set_schedule(
    instance_id: str, ctx: Ctx, state: State, body: Annotated[Any, Body()] = None
) -> ScheduleEnvelope:
    wanted = parse(BackupScheduleRequest, body, "").backup_schedule
    with transaction(state.sessions) as session:
        instances_repo.get_instance(session, instance_id=instance_id, project_id=ctx.scope)
        if state.backups() is None:
            raise OperationIsNotSupported("backups", f"the {state.settings.backend} backend")
        now = utcnow()
        interval_s = max(60, round(wanted.interval_hours * 3600))
        row = session.get(BackupSchedule, instance_id)
        if row is None:
            row = BackupSchedule(instance_id=instance_id, created=now)
            session.add(row)
        row.interval_s = interval_s
        row.incremental = wanted.incremental
        row.keep_full = wanted.retention.count
        row.keep_days = wanted.retention.days
        row.next_at = now + timedelta(seconds=interval_s)
        row.updated = now
        session.flush()
        return _view(row)


@router.get("/instances/{instance_id}/backup_schedule")
def show_schedule(instance_id: str, ctx: Ctx, state: State) -> ScheduleEnvelope:
    with transaction(state.sessions, readonly=True) as session:
        instances_repo.get_instance(session, instance_id=instance_id, project_id=ctx.scope)
        row = session.get(BackupSchedule, instance_id)
        if row is None:
            raise NotFound("Backup schedule of instance", instance_id)
        return _view(row)


@router.delete("/instances/{instance_id}/backup_schedule", status_code=204)
def delete_schedule(instance_id: str, ctx: Ctx, state: State) -> Response:
    with transaction(state.sessions) as session:
        instances_repo.get_instance(session, instance_id=instance_id, project_id=ctx.scope)
        row = session.get(BackupSchedule, instance_id)
        if row is None:
            raise NotFound("Backup schedule of instance", instance_id)
        session.delete(row)
    return Response(status_code=204)
