"""`/flavors[/{id}]`, and a datastore version's (`/datastores/{ds}/versions/{v}/flavors`)."""

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


@router.get("/datastores/{datastore}/versions/{version}/flavors", tags=["datastores"])
def list_version_flavors(
    datastore: str, version: str, ctx: Ctx, state: State, linker: Links
) -> FlavorList:
    """Trove's flavors of a datastore version (`flavor list --datastore-type ...
    --datastore-version-id ...`): every flavor, none being tied to a version here."""
    with transaction(state.sessions) as session:
        ds = catalog.get_datastore(session, id_or_name=datastore)
        catalog.get_version(session, datastore_id=ds.id, id_or_name=version)
        rows = catalog.list_flavors(session)
    return FlavorList(flavors=[flavor_view(r, ctx.tenant_id, linker) for r in rows])
