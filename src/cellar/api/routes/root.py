"""`/instances/{id}/root` (Trove's root controller):

    POST   200 {"user": {"name", "password"}}: the datastore's superuser gets a password
           (a new random one, or the body's `{"password"}`) that works over the network
    GET    200 {"rootEnabled": bool}: whether root was ever enabled (Trove's history; a
           disable does not take it back, as in Trove's `Root.load`)
    DELETE 204: the superuser's password is taken away; 404 if root was never enabled

The password is returned to this caller once; the control plane stores and logs it
nowhere (the guest sets it and hands it back in the same answer). A replica refuses
(422): it is read-only, and its superuser is its primary's; what is done on a primary is
recorded for its whole group. `POST/GET /clusters/{id}/root` (Trove's cluster root) act
on the cluster's primary.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response

from cellar.api.account_schemas import RootEnableRequest
from cellar.api.accounts import ObjectNotFound, guest_refusals, ready_instance
from cellar.api.auth import Ctx
from cellar.api.deps import ApiState, State
from cellar.api.validation import parse
from cellar.db import clusters as clusters_repo
from cellar.db import root_history
from cellar.db.engine import transaction
from cellar.domain.errors import UnprocessableEntity

router = APIRouter(tags=["instances"])


@router.post("/clusters/{cluster_id}/root", status_code=200)
def enable_cluster_root(
    cluster_id: str, ctx: Ctx, state: State, body: Annotated[Any, Body()] = None
) -> dict[str, Any]:
    """Trove's cluster root: enabled on the cluster's primary, for every member."""
    return enable_root(_primary(state, ctx.scope, cluster_id), ctx, state, body)


@router.get("/clusters/{cluster_id}/root")
def show_cluster_root(cluster_id: str, ctx: Ctx, state: State) -> dict[str, bool]:
    return show_root(_primary(state, ctx.scope, cluster_id), ctx, state)


def _primary(state: ApiState, scope: str | None, cluster_id: str) -> str:
    with transaction(state.sessions, readonly=True) as session:
        clusters_repo.get_cluster(session, cluster_id=cluster_id, project_id=scope)
        found = clusters_repo.members(session, cluster_id=cluster_id)
    if not found or found[0].replica_of_id is not None:
        raise UnprocessableEntity(f"Cluster {cluster_id} has no primary now.")
    return found[0].id


@router.post("/instances/{instance_id}/root", status_code=200)
def enable_root(
    instance_id: str, ctx: Ctx, state: State, body: Annotated[Any, Body()] = None
) -> dict[str, Any]:
    wanted = parse(RootEnableRequest, body or {}, "")
    ready_instance(state, ctx.scope, instance_id, change=True)
    with guest_refusals(state, "enable_root", "password"):
        if wanted.password is None:
            name, password = state.guest().enable_root(instance_id)
        else:
            name, password = state.guest().enable_root(instance_id, password=wanted.password)
    with transaction(state.sessions) as session:
        group = root_history.group_of(session, instance_id=instance_id)
        root_history.record_enabled(session, instance_ids=group, user=ctx.project_id)
    return {"user": {"name": name, "password": password}}


@router.get("/instances/{instance_id}/root")
def show_root(instance_id: str, ctx: Ctx, state: State) -> dict[str, bool]:
    ready_instance(state, ctx.scope, instance_id)
    with transaction(state.sessions, readonly=True) as session:
        return {"rootEnabled": root_history.root_enabled(session, instance_id=instance_id)}


@router.delete("/instances/{instance_id}/root", status_code=204)
def disable_root(instance_id: str, ctx: Ctx, state: State) -> Response:
    ready_instance(state, ctx.scope, instance_id, change=True)
    with transaction(state.sessions, readonly=True) as session:
        enabled = root_history.root_enabled(session, instance_id=instance_id)
    if not enabled:
        raise ObjectNotFound("Root user has never been enabled on the instance.")
    with guest_refusals(state, "disable_root"):
        state.guest().disable_root(instance_id)
    with transaction(state.sessions) as session:
        group = root_history.group_of(session, instance_id=instance_id)
        root_history.record_disabled(session, instance_ids=group)
    return Response(status_code=204)
