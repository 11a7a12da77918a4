"""`/instances/{id}/root` (Trove's root controller):

    POST   200 {"user": {"name", "password"}}: the datastore's superuser gets a password
           (a new random one, or the body's `{"password"}`) that works over the network
    GET    200 {"rootEnabled": bool}: enabled, and not disabled since (Trove's history)
    DELETE 204: the superuser's password is taken away; 404 if root was never enabled

The password is returned to this caller once; the control plane stores and logs it
nowhere (the guest sets it and hands it back in the same answer). A replica refuses
(422): it is read-only, and its superuser is its primary's.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response

from cellar.api.account_schemas import RootEnableRequest
from cellar.api.accounts import ObjectNotFound, guest_refusals, ready_instance
from cellar.api.auth import Ctx
from cellar.api.deps import State
from cellar.api.validation import parse
from cellar.db import root_history
from cellar.db.engine import transaction

router = APIRouter(tags=["instances"])


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
        root_history.record_enabled(session, instance_id=instance_id, user=ctx.project_id)
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
        root_history.record_disabled(session, instance_id=instance_id)
    return Response(status_code=204)
