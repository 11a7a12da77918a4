"""`/instances/{id}/users` (Trove's UserController and UserAccessController).

    GET    /users                       200 {"users": [{"name", "host", "databases"}]}, paginated
    POST   /users                       202 {"users": [{"name", "password", "databases"?}]}
    PUT    /users                       202 {"users": [{"name", "password"}]}: new passwords
    GET    /users/{name}                200 {"user": {"name", "host", "databases"}}
    PUT    /users/{name}                202 {"user": {"name"?, "password"?}}: rename, password
    DELETE /users/{name}                202
    GET    /users/{name}/databases      200 {"databases": [{"name"}]}
    PUT    /users/{name}/databases      202 {"databases": [{"name"}]}: grant
    DELETE /users/{name}/databases/{db} 202: revoke

`{name}` may be Trove's `name@host` (troveclient sends `name@%`). A user or database that
exists already is 409, one that does not 404, a reserved name 400. Passwords go to the
guest and nowhere else: not stored, not logged, never answered.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response

from cellar.api.account_schemas import (
    GrantRequest,
    PasswordsChangeRequest,
    UsersCreateRequest,
    UserUpdateRequest,
)
from cellar.api.accounts import (
    ObjectNotFound,
    existing,
    guest_refusals,
    next_links,
    page,
    ready_instance,
    user_name,
)
from cellar.api.auth import Ctx
from cellar.api.deps import ApiState, Links, State
from cellar.api.validation import parse
from cellar.domain.accounts import ANY_HOST, UserInfo, reserved_user
from cellar.domain.errors import BadRequest
from cellar.domain.specs import UserSpec

router = APIRouter(tags=["users"])

DEFAULT_PAGE = 20
MAX_PAGE = 100


def _user_body(user: UserInfo) -> dict[str, Any]:
    return {"name": user.name, "host": ANY_HOST, "databases": [{"name": d} for d in user.databases]}


def _named(raw: str) -> str:
    name = user_name(raw)
    if reserved_user(name):
        raise BadRequest("name", f"user {name!r} is reserved for the datastore's own use")
    return existing("User", name)


def _find(state: ApiState, instance_id: str, name: str) -> UserInfo:
    with guest_refusals(state, "list_users"):
        users = state.guest().list_users(instance_id)
    for user in users:
        if user.name == name:
            return user
    raise ObjectNotFound(f"User {name} cannot be found on the instance.")


@router.get("/instances/{instance_id}/users")
def list_users(
    instance_id: str,
    ctx: Ctx,
    state: State,
    linker: Links,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    marker: str | None = None,
) -> dict[str, Any]:
    ready_instance(state, ctx.scope, instance_id)
    with guest_refusals(state, "list_users"):
        users = state.guest().list_users(instance_id)
    after = None if marker is None else user_name(marker)
    shown, next_marker = page(users, lambda u: u.name, limit=limit, marker=after)
    body: dict[str, Any] = {"users": [_user_body(u) for u in shown]}
    links = next_links(linker, ctx.tenant_id, f"instances/{instance_id}/users", limit, next_marker)
    if links:
        body["links"] = links
    return body


@router.post("/instances/{instance_id}/users", status_code=202)
def create_users(
    instance_id: str, ctx: Ctx, state: State, body: Annotated[Any, Body()] = None
) -> Response:
    wanted = parse(UsersCreateRequest, body, "").users
    ready_instance(state, ctx.scope, instance_id, change=True)
    specs = [UserSpec(u.name, u.password, tuple(d.name for d in u.databases)) for u in wanted]
    if specs:
        with guest_refusals(state, "create_users", "users"):
            state.guest().create_users(instance_id, specs)
    return Response(status_code=202)


@router.put("/instances/{instance_id}/users", status_code=202)
def change_passwords(
    instance_id: str, ctx: Ctx, state: State, body: Annotated[Any, Body()] = None
) -> Response:
    wanted = parse(PasswordsChangeRequest, body, "").users
    ready_instance(state, ctx.scope, instance_id, change=True)
    for i, u in enumerate(wanted):
        if reserved_user(u.name):
            raise BadRequest(f"users[{i}].name", f"user {u.name!r} is reserved")
    pairs = [(u.name, u.password) for u in wanted]
    if pairs:
        with guest_refusals(state, "change_passwords", "users"):
            state.guest().change_passwords(instance_id, pairs)
    return Response(status_code=202)


@router.get("/instances/{instance_id}/users/{name}")
def show_user(instance_id: str, name: str, ctx: Ctx, state: State) -> dict[str, Any]:
    ready_instance(state, ctx.scope, instance_id)
    return {"user": _user_body(_find(state, instance_id, _named(name)))}


@router.put("/instances/{instance_id}/users/{name}", status_code=202)
def update_user(
    instance_id: str, name: str, ctx: Ctx, state: State, body: Annotated[Any, Body()] = None
) -> Response:
    attributes = parse(UserUpdateRequest, body, "").user
    ready_instance(state, ctx.scope, instance_id, change=True)
    current = _named(name)
    if attributes.name is not None or attributes.password is not None:
        with guest_refusals(state, "update_user", "user"):
            state.guest().update_user(
                instance_id, current, new_name=attributes.name, password=attributes.password
            )
    else:
        _find(state, instance_id, current)
    return Response(status_code=202)


@router.delete("/instances/{instance_id}/users/{name}", status_code=202)
def delete_user(instance_id: str, name: str, ctx: Ctx, state: State) -> Response:
    ready_instance(state, ctx.scope, instance_id, change=True)
    with guest_refusals(state, "delete_user"):
        state.guest().delete_user(instance_id, _named(name))
    return Response(status_code=202)


@router.get("/instances/{instance_id}/users/{name}/databases")
def list_access(instance_id: str, name: str, ctx: Ctx, state: State) -> dict[str, Any]:
    ready_instance(state, ctx.scope, instance_id)
    user = _find(state, instance_id, _named(name))
    return {"databases": [{"name": d} for d in user.databases]}


@router.put("/instances/{instance_id}/users/{name}/databases", status_code=202)
def grant_access(
    instance_id: str, name: str, ctx: Ctx, state: State, body: Annotated[Any, Body()] = None
) -> Response:
    databases = [d.name for d in parse(GrantRequest, body, "").databases]
    ready_instance(state, ctx.scope, instance_id, change=True)
    with guest_refusals(state, "grant_access", "databases"):
        state.guest().grant_access(instance_id, _named(name), databases)
    return Response(status_code=202)


@router.delete("/instances/{instance_id}/users/{name}/databases/{database}", status_code=202)
def revoke_access(instance_id: str, name: str, database: str, ctx: Ctx, state: State) -> Response:
    ready_instance(state, ctx.scope, instance_id, change=True)
    with guest_refusals(state, "revoke_access"):
        state.guest().revoke_access(instance_id, _named(name), existing("Database", database))
    return Response(status_code=202)
