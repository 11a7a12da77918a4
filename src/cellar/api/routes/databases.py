"""`/instances/{id}/databases` (Trove's SchemaController): list (paginated by name with
`limit` and `marker`), create (202; 409 if one exists, and then none is made), delete
(202; 404 if it does not exist). The datastore's own databases are never shown, and a
request naming one is a 400 (Trove's reserved list)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response

from cellar.api.account_schemas import DatabasesCreateRequest
from cellar.api.accounts import (
    existing,
    guest_refusals,
    next_links,
    page,
    ready_instance,
)
from cellar.api.auth import Ctx
from cellar.api.deps import Links, State
from cellar.api.validation import parse
from cellar.domain.accounts import reserved_database
from cellar.domain.errors import BadRequest
from cellar.domain.specs import DatabaseSpec

router = APIRouter(tags=["databases"])

DEFAULT_PAGE = 20
MAX_PAGE = 100


@router.get("/instances/{instance_id}/databases")
def list_databases(
    instance_id: str,
    ctx: Ctx,
    state: State,
    linker: Links,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    marker: str | None = None,
) -> dict[str, Any]:
    ready_instance(state, ctx.scope, instance_id)
    with guest_refusals(state, "list_databases"):
        databases = state.guest().list_databases(instance_id)
    shown, next_marker = page(databases, lambda d: d.name, limit=limit, marker=marker)
    body: dict[str, Any] = {"databases": [{"name": d.name} for d in shown]}
    links = next_links(
        linker, ctx.tenant_id, f"instances/{instance_id}/databases", limit, next_marker
    )
    if links:
        body["links"] = links
    return body


@router.post("/instances/{instance_id}/databases", status_code=202)
def create_databases(
    instance_id: str, ctx: Ctx, state: State, body: Annotated[Any, Body()] = None
) -> Response:
    wanted = parse(DatabasesCreateRequest, body, "").databases
    ready_instance(state, ctx.scope, instance_id, change=True)
    specs = [DatabaseSpec(d.name, d.character_set, d.collate) for d in wanted]
    if specs:
        with guest_refusals(state, "create_databases", "databases"):
            state.guest().create_databases(instance_id, specs)
    return Response(status_code=202)


@router.delete("/instances/{instance_id}/databases/{name}", status_code=202)
def delete_database(instance_id: str, name: str, ctx: Ctx, state: State) -> Response:
    ready_instance(state, ctx.scope, instance_id, change=True)
    if reserved_database(name):
        raise BadRequest("name", f"database {name!r} is reserved for the datastore's own use")
    with guest_refusals(state, "delete_database"):
        state.guest().delete_database(instance_id, existing("Database", name))
    return Response(status_code=202)
