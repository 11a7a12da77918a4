"""`/instances`: create (200, BUILD; with `replica_of`, replicas), list with pagination
(also as Trove's `/instances/detail`), show, update (PUT or PATCH: rename; detach a
replica; attach or detach a configuration group), delete (202)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Query, Response
from sqlalchemy.orm import Session

from cellar.api import cluster_provisioning, configurations, restores
from cellar.api.auth import Ctx
from cellar.api.deps import ApiState, Links, State
from cellar.api.provisioning import provision
from cellar.api.replicas import detach, find_instance, provision_replicas
from cellar.api.schemas import InstanceCreateRequest, InstanceUpdateRequest, ShrinkMember
from cellar.api.validation import parse
from cellar.api.views.common import Link
from cellar.api.views.instances import InstanceEnvelope, InstanceList, instance_view
from cellar.db import catalog
from cellar.db import clusters as clusters_repo
from cellar.db import instances as repo
from cellar.db.engine import transaction
from cellar.db.jobs import submit_job
from cellar.db.models import Instance
from cellar.domain.backups import RestorableWindow, archive_id
from cellar.domain.errors import BadRequest, CellarError, Conflict, Forbidden
from cellar.domain.status import InstanceTask
from cellar.drivers.base import DriverError
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
    request = body.instance
    if request.replica_of is not None:
        # Replicas join their primary's group, built as its cluster's members are.
        with transaction(state.sessions) as session:
            primary = find_instance(
                session, ref=request.replica_of, project_id=ctx.tenant_id,
                field="instance.replica_of",
            )  # fmt: skip
        state.manager.require(Operation.GROW_CLUSTER, primary.provisioning_engine)
        with transaction(state.sessions) as session:
            first = provision_replicas(
                session, request=request, project_id=ctx.tenant_id, settings=state.settings
            )[0]
            label = _label(session, first)
        return InstanceEnvelope(instance=instance_view(first, label, linker))
    state.manager.require(Operation.PROVISION_INSTANCE, state.provisioning_engine)
    with transaction(state.sessions) as session:
        restore = None
        if request.restorePoint is not None:
            restore = restores.resolve(
                session,
                point=request.restorePoint,
                project_id=ctx.tenant_id,
                backups=state.backups(),
                backend=state.settings.backend,
            )
        row, label = provision(
            session,
            request=request,
            project_id=ctx.tenant_id,
            settings=state.settings,
            provisioning_engine=state.provisioning_engine,
            restore=restore,
        )
    return InstanceEnvelope(instance=instance_view(row, label, linker))


def _label(session: Session, row: Instance) -> tuple[str, str]:
    version = catalog.get_version_by_id(session, version_id=row.datastore_version_id)
    return catalog.version_labels(session, version_ids=[version.id])[version.id]


@router.get("/instances")
@router.get("/instances/detail")
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
        replicas = repo.replicas_by_primary(session, instance_ids=[r.id for r in rows])
    timeout = state.settings.guest_heartbeat_timeout_s
    views = [
        instance_view(
            r,
            labels[r.datastore_version_id],
            linker,
            heartbeat_timeout_s=timeout,
            replicas=replicas.get(r.id, ()),
        )
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
        label = _label(session, row)
        replicas = repo.replicas_of(session, instance_id=row.id)
        group = configurations.group_name(session, row)
    timeout = state.settings.guest_heartbeat_timeout_s
    view = instance_view(row, label, linker, heartbeat_timeout_s=timeout, replicas=replicas)
    if view.configuration is not None and group is not None:
        view.configuration["name"] = group
    window = _window(state, archive_id(row.id, row.cluster_id))
    if window is not None:
        view.restorable_from, view.restorable_until = restores.window_bounds(window)
    return InstanceEnvelope(instance=view)


def _window(state: ApiState, archive: str) -> RestorableWindow | None:
    """The restorable window of an instance's archive (its group's, for a member), when
    the cloud keeps backups and it has one (a repository that cannot answer now only
    leaves it out of the view)."""
    backups = state.backups()
    if backups is None:
        return None
    try:
        return backups.restorable_window(archive)
    except (DriverError, CellarError):
        return None


@router.put("/instances/{instance_id}", status_code=202)
@router.patch("/instances/{instance_id}", status_code=202)
def update_instance(
    instance_id: str, ctx: Ctx, state: State, body: Annotated[Any, Body()] = None
) -> Response:
    """Trove's `PUT /instances/{id}` (`PATCH`, its deprecated alias, does the same): a
    `name` renames; besides it one change at a time: `{"replica_of": null}` detaches a
    replica (promoted into an instance of its own), `configuration` attaches a
    configuration group (null detaches it), and an empty `instance` detaches it too."""
    update = parse(InstanceUpdateRequest, body, "").instance
    given = update.model_fields_set
    if len(given - {"name"}) > 1:
        raise BadRequest("instance", "only one attribute (besides name) may change at a time")
    with transaction(state.sessions) as session:
        row = repo.get_instance(session, instance_id=instance_id, project_id=ctx.scope)
        if update.name is not None:
            row.name = update.name
        if "replica_of" in given:
            if update.replica_of is not None:
                raise BadRequest(
                    "instance.replica_of",
                    "only null (detach) is accepted here; create a replica with replica_of",
                )
            detach(session, replica=row)
        if "configuration" in given or not given:
            configurations.change_configuration(
                session, row, update.configuration, project_id=row.tenant_id
            )
    return Response(status_code=202)


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
        if row.cluster_id is not None and _delete_member(state, row):
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


def _delete_member(state: ApiState, row: Instance) -> bool:
    """A member of a replication group leaves it as a shrink does (its peers stop letting
    it in, its slot goes); the last member of a cluster goes with its cluster; a primary
    with replicas is refused. False: a plain delete (the lone primary of a `replica_of`
    group)."""
    with transaction(state.sessions) as session:
        group = clusters_repo.get_cluster(session, cluster_id=row.cluster_id or "")
        members = clusters_repo.members(session, cluster_id=group.id)
        others = [m for m in members if m.id != row.id]
        if row.replica_of_id is None and others:
            raise BadRequest(
                "instance",
                f"instance {row.id} is the primary of {len(others)} replicas: promote one "
                "(promote_to_replica_source), detach them, or delete the cluster",
            )
        if others:
            state.manager.require(Operation.SHRINK_CLUSTER, group.provisioning_engine)
            cluster_provisioning.shrink(session, cluster=group, requested=[ShrinkMember(id=row.id)])
            return True
        if not group.implicit:
            state.manager.require(Operation.DELETE_CLUSTER, group.provisioning_engine)
            cluster_provisioning.delete(session, cluster=group)
            return True
    return False
