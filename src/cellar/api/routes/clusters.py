"""`/clusters` as python-troveclient's `openstack database cluster ...` sends it: create
(200, BUILDING), list, show, `POST /clusters/{id}` with `grow` or `shrink` (202), delete
(202). Members are instances: `GET /instances/{id}` shows each with its `cluster_id`.

Order of checks for an action: the body (400), the cluster (404), the resource manager
(501), the arguments against the cluster (400), then its task as a compare-and-set (422
when the cluster is mid-operation, 409 on a lost race)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Response

from cellar.api import cluster_provisioning as provisioning
from cellar.api.auth import Ctx
from cellar.api.deps import ApiState, Links, State
from cellar.api.schemas import ClusterAction, ClusterCreateRequest
from cellar.api.validation import parse
from cellar.api.views.clusters import (
    ClusterEnvelope,
    ClusterList,
    ClusterView,
    cluster_view,
    role_of,
)
from cellar.db import catalog
from cellar.db import clusters as repo
from cellar.db.engine import transaction
from cellar.db.models import Cluster, Instance
from cellar.domain.errors import CellarError, Forbidden
from cellar.domain.replication import Role, slot_name
from cellar.drivers.base import DriverError
from cellar.resource_managers.base import Operation

router = APIRouter(tags=["clusters"])
log = logging.getLogger(__name__)


@router.post("/clusters")
def create_cluster(
    body: ClusterCreateRequest, ctx: Ctx, state: State, linker: Links
) -> ClusterEnvelope:
    state.manager.require(Operation.PROVISION_CLUSTER, state.provisioning_engine)
    with transaction(state.sessions) as session:
        row = provisioning.create(
            session,
            request=body.cluster,
            project_id=ctx.tenant_id,
            settings=state.settings,
            provisioning_engine=state.provisioning_engine,
        )
        view = _view(session, row, linker, state, live=False)
    return ClusterEnvelope(cluster=view)


@router.get("/clusters")
def list_clusters(ctx: Ctx, state: State, linker: Links, all_projects: bool = False) -> ClusterList:
    if all_projects and not ctx.is_admin:
        raise Forbidden("all_projects=true is for administrators.")
    with transaction(state.sessions, readonly=True) as session:
        rows = repo.list_clusters(session, project_id=None if all_projects else ctx.tenant_id)
        views = [_view(session, r, linker, state, live=False) for r in rows]
    return ClusterList(clusters=views)


@router.get("/clusters/{cluster_id}")
def show_cluster(cluster_id: str, ctx: Ctx, state: State, linker: Links) -> ClusterEnvelope:
    with transaction(state.sessions, readonly=True) as session:
        row = repo.get_cluster(session, cluster_id=cluster_id, project_id=ctx.scope)
        view = _view(session, row, linker, state, live=True)
    return ClusterEnvelope(cluster=view)


@router.post("/clusters/{cluster_id}", status_code=202)
def cluster_action(
    cluster_id: str, ctx: Ctx, state: State, body: Annotated[Any, Body()] = None
) -> Response:
    action = parse(ClusterAction, body, "")
    with transaction(state.sessions) as session:
        row = repo.get_cluster(session, cluster_id=cluster_id, project_id=ctx.scope)
        if action.grow is not None:
            state.manager.require(Operation.GROW_CLUSTER, row.provisioning_engine)
            provisioning.grow(session, cluster=row, requested=action.grow, settings=state.settings)
        elif action.shrink is not None:
            state.manager.require(Operation.SHRINK_CLUSTER, row.provisioning_engine)
            provisioning.shrink(session, cluster=row, requested=action.shrink)
    return Response(status_code=202)


@router.delete("/clusters/{cluster_id}", status_code=202)
def delete_cluster(cluster_id: str, ctx: Ctx, state: State) -> Response:
    with transaction(state.sessions) as session:
        row = repo.get_cluster(session, cluster_id=cluster_id, project_id=ctx.scope)
        state.manager.require(Operation.DELETE_CLUSTER, row.provisioning_engine)
        provisioning.delete(session, cluster=row)
    return Response(status_code=202)


def _view(session: Any, row: Cluster, linker: Links, state: ApiState, *, live: bool) -> ClusterView:
    members = repo.members(session, cluster_id=row.id)
    version = catalog.get_version_by_id(session, version_id=row.datastore_version_id)
    label = catalog.version_labels(session, version_ids=[version.id])[version.id]
    return cluster_view(
        row,
        members,
        label,
        linker,
        lag=_lag(state, members) if live else None,
        heartbeat_timeout_s=state.settings.guest_heartbeat_timeout_s,
        zone=state.settings.dns_zone,
    )


def _lag(state: ApiState, members: list[Instance]) -> dict[str, int | None]:
    """Each replica's lag in bytes, as its primary's slot for it tells; nothing when the
    primary cannot be asked (the view is still shown)."""
    primary = next((m for m in members if role_of(m) is Role.PRIMARY), None)
    if primary is None or primary.task_status != "NONE":
        return {}
    try:
        status = state.guest().replication_status(primary.id)
    except (DriverError, CellarError) as exc:
        log.info("replication status of %s: %s", primary.id, exc)
        return {}
    by_slot = {r.slot: r.lag_bytes for r in status.replicas}
    return {m.id: by_slot.get(slot_name(m.id)) for m in members if role_of(m) is Role.REPLICA}
