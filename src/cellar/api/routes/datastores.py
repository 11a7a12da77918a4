"""`/datastores[/{id or name}]` and `/datastores/{ds}/versions[/{id or name}]`."""

from __future__ import annotations

from fastapi import APIRouter

from cellar.api.auth import Ctx
from cellar.api.deps import Links, State
from cellar.api.views.catalog import DatastoreView, VersionView, datastore_view, version_view
from cellar.api.views.common import View
from cellar.db import catalog
from cellar.db.engine import transaction

router = APIRouter(tags=["datastores"])


class DatastoreList(View):
    datastores: list[DatastoreView]


class DatastoreEnvelope(View):
    datastore: DatastoreView


class VersionList(View):
    versions: list[VersionView]


class VersionEnvelope(View):
    version: VersionView


@router.get("/datastores")
def list_datastores(ctx: Ctx, state: State, linker: Links) -> DatastoreList:
    with transaction(state.sessions) as session:
        views = [
            datastore_view(
                ds,
                catalog.list_versions(session, datastore_id=ds.id, active_only=True),
                ctx.tenant_id,
                linker,
            )
            for ds in catalog.list_datastores(session)
        ]
    return DatastoreList(datastores=views)


@router.get("/datastores/{datastore}")
def show_datastore(datastore: str, ctx: Ctx, state: State, linker: Links) -> DatastoreEnvelope:
    with transaction(state.sessions) as session:
        ds = catalog.get_datastore(session, id_or_name=datastore)
        versions = catalog.list_versions(session, datastore_id=ds.id, active_only=True)
    return DatastoreEnvelope(datastore=datastore_view(ds, versions, ctx.tenant_id, linker))


@router.get("/datastores/{datastore}/versions")
def list_versions(datastore: str, ctx: Ctx, state: State, linker: Links) -> VersionList:
    with transaction(state.sessions) as session:
        ds = catalog.get_datastore(session, id_or_name=datastore)
        rows = catalog.list_versions(session, datastore_id=ds.id)
    return VersionList(versions=[version_view(v, ctx.tenant_id, linker) for v in rows])


@router.get("/datastores/{datastore}/versions/{version}")
def show_version(
    datastore: str, version: str, ctx: Ctx, state: State, linker: Links
) -> VersionEnvelope:
    with transaction(state.sessions) as session:
        ds = catalog.get_datastore(session, id_or_name=datastore)
        row = catalog.get_version(session, datastore_id=ds.id, id_or_name=version)
    return VersionEnvelope(version=version_view(row, ctx.tenant_id, linker))
