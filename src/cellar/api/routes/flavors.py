"""`/flavors[/{id}]`."""

from __future__ import annotations

from fastapi import APIRouter

from cellar.api.auth import Ctx
from cellar.api.deps import Links, State
from cellar.api.views.catalog import FlavorView, flavor_view
from cellar.api.views.common import View
from cellar.db import catalog
from cellar.db.engine import transaction

router = APIRouter(tags=["flavors"])


class FlavorList(View):
    flavors: list[FlavorView]


class FlavorEnvelope(View):
    flavor: FlavorView


@router.get("/flavors")
def list_flavors(ctx: Ctx, state: State, linker: Links) -> FlavorList:
    with transaction(state.sessions) as session:
        rows = catalog.list_flavors(session)
    return FlavorList(flavors=[flavor_view(r, ctx.tenant_id, linker) for r in rows])


@router.get("/flavors/{flavor_id}")
def show_flavor(flavor_id: str, ctx: Ctx, state: State, linker: Links) -> FlavorEnvelope:
    with transaction(state.sessions) as session:
        row = catalog.get_flavor(session, flavor_id=flavor_id)
    return FlavorEnvelope(flavor=flavor_view(row, ctx.tenant_id, linker))
