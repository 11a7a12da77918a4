"""`/instances`: create (200, BUILD), list with pagination, show, delete (202)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Response

from cellar.api.auth import Ctx
from cellar.api.deps import Links, State
from cellar.api.provisioning import provision
from cellar.api.schemas import InstanceCreateRequest
from cellar.api.views.common import Link
from cellar.api.views.instances import InstanceEnvelope, InstanceList, instance_view
from cellar.db import catalog
from cellar.db import instances as repo
from cellar.db.engine import transaction
from cellar.db.jobs import submit_job
from cellar.domain.errors import Conflict, Forbidden
from cellar.domain.status import InstanceTask
from cellar.resource_managers.base import Operation
from cellar.taskmanager.kinds import JobKind

router = APIRouter(tags=["instances"])

DEFAULT_PAGE = 20
MAX_PAGE = 100
DELETE_ATTEMPTS = 3


@router.post("/instances")
def create_instance(
    body: InstanceCreateRequest, ctx: Ctx, state: State, linker: Links
) -> InstanceEnvelope:
    state.manager.require(Operation.PROVISION_INSTANCE, state.provisioning_engine)
    with transaction(state.sessions) as session:
        row, label = provision(
            session,
            request=body.instance,
            project_id=ctx.tenant_id,
            settings=state.settings,
            provisioning_engine=state.provisioning_engine,
        )
    return InstanceEnvelope(instance=instance_view(row, label, linker))


@router.get("/instances")
def list_instances(
    ctx: Ctx,
    state: State,
    linker: Links,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    marker: str | None = None,
    all_projects: bool = False,
) -> InstanceList:
    """The path project's instances; `all_projects=true` (admins only) lists every one."""
    if all_projects and not ctx.is_admin:
        raise Forbidden("all_projects=true is for administrators.")
    project = None if all_projects else ctx.tenant_id
    with transaction(state.sessions) as session:
        rows, next_marker = repo.list_instances(
            session, project_id=project, limit=limit, marker=marker
        )
        labels = catalog.version_labels(session, version_ids=(r.datastore_version_id for r in rows))
    timeout = state.settings.guest_heartbeat_timeout_s
    views = [
        instance_view(r, labels[r.datastore_version_id], linker, heartbeat_timeout_s=timeout)
        for r in rows
    ]
    links = None
    if next_marker is not None:
        query = {"limit": limit, "marker": next_marker}
        if all_projects:
            query["all_projects"] = "true"
        href = f"{linker.url(ctx.tenant_id, 'instances')}?{urlencode(query)}"
        links = [Link(href=href, rel="next")]
    return InstanceList(instances=views, links=links)


@router.get("/instances/{instance_id}")
def show_instance(instance_id: str, ctx: Ctx, state: State, linker: Links) -> InstanceEnvelope:
    with transaction(state.sessions) as session:
        row = repo.get_instance(session, instance_id=instance_id, project_id=ctx.scope)
        version = catalog.get_version_by_id(session, version_id=row.datastore_version_id)
        label = catalog.version_labels(session, version_ids=[version.id])[version.id]
    timeout = state.settings.guest_heartbeat_timeout_s
    return InstanceEnvelope(instance=instance_view(row, label, linker, heartbeat_timeout_s=timeout))


@router.delete("/instances/{instance_id}", status_code=202)
def delete_instance(instance_id: str, ctx: Ctx, state: State) -> Response:
    """Delete from any state; a delete already under way is accepted without a new job.

    The task change is a compare-and-set: when the task manager moves the task at the
    same moment (BUILDING -> NONE), the delete reads the instance again and retries.
    """
    for attempt in range(DELETE_ATTEMPTS):
        with transaction(state.sessions) as session:
            row = repo.get_instance(session, instance_id=instance_id, project_id=ctx.scope)
        seen = InstanceTask(row.task_status)
        if seen is InstanceTask.DELETING:
            break
        state.manager.require(Operation.DELETE_INSTANCE, row.provisioning_engine)
        try:
            with transaction(state.sessions) as session:
                repo.change_task(
                    session, instance_id=instance_id, target=InstanceTask.DELETING, expected=seen
                )
                submit_job(session, kind=JobKind.DELETE_INSTANCE.value, instance_id=instance_id)
            break
        except Conflict:
            if attempt == DELETE_ATTEMPTS - 1:
                raise
    return Response(status_code=202)
