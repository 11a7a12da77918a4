"""A stand-in for OpenStack Heat: the part of its orchestration v1 API that openstacksdk
and `HeatStackService` use, served by the REAL embedded engine (`LocalStackService`).

It answers as Heat does, errors included: a stack is looked up by name or id with a 302
to its canonical URL `/v1/{tenant}/stacks/{name}/{id}` (for any method, as Heat's
`lookup` route has no method condition); an unknown stack is a 404 with Heat's error body
(`{"explanation", "code", "error": {"message", "traceback", "type"}, "title"}`, the
message "The Stack (x) could not be found."); a deleted stack is still shown, as
DELETE_COMPLETE, when looked up by id (Heat's `show_deleted`); a duplicate name or an
update of a stack in progress is a 409; an invalid template a 400. Requests need a token
and the tenant of the URL (401/403 otherwise), as Heat's auth middleware.

Keystone's part is served too (`POST /v3/auth/tokens`, password auth scoped to the
tenant): its token's catalog points at this server's `/v1/{tenant}`, so openstacksdk finds
Heat as on a real cloud, with no endpoint override and no version discovery.

Heat's defaults kept: `disable_rollback` is true unless the create says otherwise; PATCH
merges parameters and keeps the stored template when none is given (the engine's PATCH);
PUT needs a template and resets the parameters not given to their defaults.

Not served: stack lists, previews, environments beyond their `parameters`,
files, nested stacks, resource show, event show, actions, outputs by key.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from cellar.domain.errors import Conflict, NotFound, UnprocessableEntity
from cellar.orchestration.local.service import LocalStackService
from cellar.orchestration.local.store import StackRecord
from cellar.orchestration.local.template import TemplateError
from cellar.orchestration.stacks import StackError

TITLES = {
    400: (
        "Bad Request",
        "The server could not comply with the request since it is either "
        "malformed or otherwise incorrect.",
    ),
    401: (
        "Unauthorized",
        "This server could not verify that you are authorized to access "
        "the document you requested.",
    ),
    403: ("Forbidden", "Access was denied to this resource."),
    404: ("Not Found", "The resource could not be found."),
    409: ("Conflict", "There was a conflict when trying to complete your request."),
}

USERNAME = "cellar"
REGION = "RegionOne"

# Heat's `stack_lookup_subpath` route: GET /stacks/{name_or_id}/{path} redirects too.
SUBPATHS = ("resources", "events", "template", "outputs", "environment", "files")


class HeatFault(Exception):
    """An error as Heat's fault middleware answers it."""

    def __init__(self, code: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.code, self.error_type, self.message = code, error_type, message


def _fault(exc: HeatFault) -> JSONResponse:
    title, explanation = TITLES[exc.code]
    body = {
        "explanation": explanation,
        "code": exc.code,
        "error": {"message": exc.message, "traceback": None, "type": exc.error_type},
        "title": title,
    }
    return JSONResponse(body, status_code=exc.code)


def _not_found(name: str) -> HeatFault:
    return HeatFault(404, "EntityNotFound", f"The Stack ({name}) could not be found.")


def _isotime(record_time: Any) -> str:
    return str(record_time.strftime("%Y-%m-%dT%H:%M:%SZ"))


def heat_app(stacks: LocalStackService, *, tenant: str, password: str) -> FastAPI:
    engine = stacks.engine
    app = FastAPI(title="Heat stand-in")
    app.add_exception_handler(HeatFault, lambda _r, exc: _fault(exc))

    @app.middleware("http")
    async def keystone(request: Request, call_next: Any) -> Any:
        # Heat's auth middleware and the tenant check of every v1 route; version documents
        # and Keystone's token issuing need no token.
        path = request.url.path
        if path not in ("/", "/v3", "/v3/auth/tokens") and not _token_ok(request):
            return _fault(HeatFault(401, "Unauthorized", "Authentication required"))
        parts = path.split("/")
        if len(parts) > 2 and parts[1] == "v1" and parts[2] != tenant:
            return _fault(HeatFault(403, "Forbidden", "Access was denied to this resource."))
        return await call_next(request)

    def _token_ok(request: Request) -> bool:
        return request.headers.get("x-auth-token") in issued

    issued: set[str] = set()

    @app.post("/v3/auth/tokens", status_code=201)
    async def issue_token(request: Request) -> JSONResponse:
        """Keystone v3's password authentication, scoped to the tenant: the token carries
        a catalog whose orchestration endpoint is this server's `/v1/{tenant}`, so that
        openstacksdk finds Heat as on a real cloud (no endpoint override)."""
        auth = (await request.json()).get("auth", {})
        user = auth.get("identity", {}).get("password", {}).get("user", {})
        scope = auth.get("scope", {}).get("project", {})
        if user.get("name") != USERNAME or user.get("password") != password:
            return _fault(
                HeatFault(401, "Unauthorized", "The request you have made requires authentication.")
            )
        if tenant not in (scope.get("id"), scope.get("name")):
            return _fault(HeatFault(401, "Unauthorized", "Invalid project scope"))
        token = uuid.uuid4().hex
        issued.add(token)
        root = str(request.base_url).rstrip("/")
        catalog = [
            {
                "type": "orchestration",
                "name": "heat",
                "id": "heat",
                "endpoints": [
                    {
                        "id": f"heat-{interface}",
                        "interface": interface,
                        "region": REGION,
                        "region_id": REGION,
                        "url": f"{root}/v1/{tenant}",
                    }
                    for interface in ("public", "internal")
                ],
            }
        ]
        domain = {"id": "default", "name": "Default"}
        body = {
            "token": {
                "methods": ["password"],
                "expires_at": "2099-01-01T00:00:00.000000Z",
                "issued_at": "2020-01-01T00:00:00.000000Z",
                "user": {"id": USERNAME, "name": USERNAME, "domain": domain},
                "project": {"id": tenant, "name": tenant, "domain": domain},
                "roles": [{"id": "member", "name": "member"}],
                "catalog": catalog,
            }
        }
        return JSONResponse(body, status_code=201, headers={"X-Subject-Token": token})

    @app.get("/")
    def versions(request: Request) -> JSONResponse:
        """Heat's version document (300, unauthenticated): keystoneauth discovers the
        API version from it before openstacksdk makes the orchestration proxy."""
        href = f"{str(request.base_url).rstrip('/')}/v1/"
        document = {
            "versions": [
                {"id": "v1.0", "status": "CURRENT", "links": [{"href": href, "rel": "self"}]}
            ]
        }
        return JSONResponse(document, status_code=300)

    def base(request: Request) -> str:
        return f"{str(request.base_url).rstrip('/')}/v1/{tenant}/stacks"

    def identify(name_or_id: str) -> StackRecord:
        """Heat's `identify_stack`: an id finds deleted stacks too, a name only live ones."""
        try:
            return engine.get_stack(name_or_id)
        except NotFound:
            pass
        for record in engine.store.list_stacks():
            if record.name == name_or_id and record.state != "DELETE_COMPLETE":
                return record
        raise _not_found(name_or_id)

    def identified(name: str, stack_id: str, *, show_deleted: bool = False) -> StackRecord:
        """Heat's `_get_stack` for `/stacks/{name}/{id}`: the name must be the stack's."""
        try:
            record = engine.get_stack(stack_id)
        except NotFound:
            raise _not_found(name) from None
        if record.name != name or (record.state == "DELETE_COMPLETE" and not show_deleted):
            raise _not_found(name)
        return record

    @app.post("/v1/{t}/stacks", status_code=201)
    async def create(request: Request) -> dict[str, Any]:
        body = await request.json()
        name, template = body.get("stack_name"), body.get("template")
        if not name:
            raise HeatFault(400, "HTTPBadRequest", "No stack name specified")
        if template is None:
            raise HeatFault(400, "HTTPBadRequest", "No template specified")
        if any(r.name == name and r.state != "DELETE_COMPLETE" for r in engine.store.list_stacks()):
            raise HeatFault(409, "StackExists", f"The Stack ({name}) already exists.")
        parameters = {**(body.get("environment") or {}).get("parameters", {})}
        parameters.update(body.get("parameters") or {})
        try:
            stack_id = stacks.create(
                name, template, parameters, disable_rollback=body.get("disable_rollback", True)
            )
        except StackError as exc:
            raise HeatFault(400, "StackValidationFailed", exc.message) from None
        link = {"href": f"{base(request)}/{name}/{stack_id}", "rel": "self"}
        return {"stack": {"id": stack_id, "links": [link]}}

    @app.api_route("/v1/{t}/stacks/{name_or_id}", methods=["GET", "PATCH", "PUT", "DELETE"])
    def lookup(request: Request, name_or_id: str) -> Response:
        record = identify(name_or_id)
        location = f"{base(request)}/{record.name}/{record.id}"
        if request.url.query:
            location += f"?{request.url.query}"
        return RedirectResponse(location, status_code=302)

    @app.get("/v1/{t}/stacks/{name}/{stack_id}")
    def show(request: Request, name: str, stack_id: str) -> Any:
        if stack_id in SUBPATHS:  # Heat's `stack_lookup_subpath`, routed before `show`
            record = identify(name)
            location = f"{base(request)}/{record.name}/{record.id}/{stack_id}"
            return RedirectResponse(location, status_code=302)
        record = identified(name, stack_id, show_deleted=True)
        stack: dict[str, Any] = {
            "id": record.id,
            "stack_name": record.name,
            "links": [{"href": f"{base(request)}/{record.name}/{record.id}", "rel": "self"}],
            "stack_status": record.state,
            "stack_status_reason": record.status_reason,
            "creation_time": _isotime(record.created_at),
            "updated_time": _isotime(record.updated_at),
            "disable_rollback": record.disable_rollback,
            "parameters": {
                **{k: str(v) for k, v in record.parameters.items()},
                "OS::stack_id": record.id,
                "OS::stack_name": record.name,
                "OS::project_id": tenant,
            },
            "description": record.template.get("description", "No description"),
            "tags": None,
        }
        resolve = request.query_params.get("resolve_outputs", "true").lower() != "false"
        # Heat resolves outputs mid-operation too (what is not made yet: `output_error`).
        if resolve and record.state != "DELETE_COMPLETE":
            outputs = []
            for key, entry in engine.outputs(record.id).items():
                output = {
                    "output_key": key,
                    "output_value": entry.get("value"),
                    "description": entry.get("description") or "No description given",
                }
                if "error" in entry:
                    output["output_error"] = entry["error"]
                outputs.append(output)
            stack["outputs"] = outputs
        return {"stack": stack}

    @app.patch("/v1/{t}/stacks/{name}/{stack_id}", status_code=202)
    async def update_patch(request: Request, name: str, stack_id: str) -> Response:
        record = identified(name, stack_id)
        body = await request.json()
        if record.status == "IN_PROGRESS":
            raise HeatFault(
                409,
                "ActionInProgress",
                f"Stack {name} already has an action ({record.action}) in progress.",
            )
        try:
            stacks.update(
                stack_id, template=body.get("template"), parameters=body.get("parameters")
            )
        except StackError as exc:
            cause = exc.__cause__
            if isinstance(cause, Conflict):
                raise HeatFault(409, "ActionInProgress", exc.message) from None
            if isinstance(cause, UnprocessableEntity):
                raise HeatFault(400, "NotSupported", exc.message) from None
            kind = "StackValidationFailed" if isinstance(cause, TemplateError) else "HTTPBadRequest"
            raise HeatFault(400, kind, exc.message) from None
        return Response(status_code=202)

    @app.put("/v1/{t}/stacks/{name}/{stack_id}", status_code=202)
    async def update_put(request: Request, name: str, stack_id: str) -> Response:
        """Heat's PUT (openstacksdk's `update_stack`): a template is required and parameters
        not given go back to their defaults. Served to show what PATCH avoids."""
        record = identified(name, stack_id)
        body = await request.json()
        template = body.get("template")
        if template is None:
            raise HeatFault(400, "HTTPBadRequest", "No template specified")
        given = body.get("parameters") or {}
        parameters: dict[str, Any] = {}
        for key, schema in (template.get("parameters") or {}).items():
            if key in given:
                parameters[key] = given[key]
            elif isinstance(schema, dict) and "default" in schema:
                parameters[key] = schema["default"]
            else:
                raise HeatFault(
                    400, "UserParameterMissing", f"The Parameter ({key}) was not provided."
                )
        if record.status == "IN_PROGRESS":
            raise HeatFault(
                409,
                "ActionInProgress",
                f"Stack {name} already has an action ({record.action}) in progress.",
            )
        try:
            stacks.update(stack_id, template=template, parameters=parameters)
        except StackError as exc:
            raise HeatFault(400, "StackValidationFailed", exc.message) from None
        return Response(status_code=202)

    @app.delete("/v1/{t}/stacks/{name}/{stack_id}", status_code=204)
    def delete(name: str, stack_id: str) -> Response:
        identified(name, stack_id)
        stacks.delete(stack_id)
        return Response(status_code=204)

    @app.get("/v1/{t}/stacks/{name}/{stack_id}/template")
    def template(name: str, stack_id: str) -> dict[str, Any]:
        return identified(name, stack_id, show_deleted=True).template

    @app.get("/v1/{t}/stacks/{name}/{stack_id}/resources")
    def resources(request: Request, name: str, stack_id: str) -> dict[str, Any]:
        record = identified(name, stack_id, show_deleted=True)
        if record.state == "DELETE_COMPLETE":
            return {"resources": []}
        href = f"{base(request)}/{name}/{stack_id}"
        return {
            "resources": [
                {
                    "resource_name": r.name,
                    "logical_resource_id": r.name,
                    "resource_type": r.type,
                    "physical_resource_id": r.physical_id or "",
                    "resource_status": r.status,
                    "resource_status_reason": r.status_reason,
                    "required_by": [],
                    "updated_time": "",
                    "links": [
                        {"href": f"{href}/resources/{r.name}", "rel": "self"},
                        {"href": href, "rel": "stack"},
                    ],
                }
                for r in stacks.resources(stack_id)
            ]
        }

    @app.get("/v1/{t}/stacks/{name}/{stack_id}/events")
    def events(request: Request, name: str, stack_id: str) -> dict[str, Any]:
        identified(name, stack_id, show_deleted=True)
        sort_dir = request.query_params.get("sort_dir", "asc")
        if sort_dir not in ("asc", "desc"):
            raise HeatFault(
                400,
                "HTTPBadRequest",
                f"Unknown sort direction, must be one of: asc, desc; got {sort_dir}",
            )
        wanted = request.query_params.get("resource_name")
        records = [e for e in engine.events(stack_id) if wanted in (None, e.resource_name)]
        if sort_dir == "desc":
            records.reverse()
        href = f"{base(request)}/{name}/{stack_id}"
        return {
            "events": [
                {
                    # Heat's event ids are UUIDs; the engine's counter makes a stable one.
                    "id": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{stack_id}/{e.id}")),
                    "event_time": _isotime(e.timestamp),
                    "resource_name": e.resource_name,
                    "logical_resource_id": e.resource_name,
                    "physical_resource_id": e.physical_resource_id,
                    "resource_status": f"{e.action}_{e.status}",
                    "resource_status_reason": e.reason,
                    "links": [{"href": f"{href}/resources/{e.resource_name}", "rel": "resource"}],
                }
                for e in records
            ]
        }

    @app.post("/v1/{t}/stacks/{name}/{stack_id}/resources/{resource_name}/signal")
    async def signal(request: Request, name: str, stack_id: str, resource_name: str) -> Response:
        identified(name, stack_id)
        body = await request.json() if await request.body() else {}
        if resource_name not in {r.name for r in stacks.resources(stack_id)}:
            raise HeatFault(
                404,
                "ResourceNotFound",
                f"The Resource ({resource_name}) could not be found in Stack {name}.",
            )
        try:
            stacks.signal(stack_id, resource_name, body or {})
        except StackError as exc:
            raise HeatFault(400, "ResourceFailure", exc.message) from None
        return Response(status_code=200)

    return app


@contextmanager
def serve_heat(
    stacks: LocalStackService, *, tenant: str = "p1", password: str = "secret"
) -> Iterator[str]:
    """The stand-in on 127.0.0.1 (a free port, uvicorn in a thread); yields its root URL:
    Keystone at `{url}/v3` (user `USERNAME`, `password`, project `tenant`), Heat at
    `{url}/v1/{tenant}`."""
    app = heat_app(stacks, tenant=tenant, password=password)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="heat", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the Heat stand-in did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
