"""`/mgmt/instances[/{id}]`: Trove's management view of instances, for administrators;
`POST /mgmt/instances/{id}/action` with `reboot` (where python-troveclient's `instance
reboot` goes) or `reset-task-status`.

Admins only, checked before the instance is looked up: a non-admin gets 403 whether or
not the id exists. An admin sees any project's instance from any project's path;
`deleted=true` shows a deleted one too, as Trove's does.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Query, Response

from cellar.api.auth import Ctx
from cellar.api.deps import Links, State
from cellar.api.routes.actions import start_action
from cellar.api.routes.instances import DEFAULT_PAGE, MAX_PAGE
from cellar.api.schemas import NoArguments
from cellar.api.validation import parse
from cellar.api.views.common import Link, View, omitted_if_none
from cellar.api.views.mgmt import MgmtInstanceEnvelope, MgmtInstanceView, mgmt_instance_view
from cellar.db import catalog
from cellar.db import instances as repo
from cellar.db.engine import transaction
from cellar.db.resets import reset_task
from cellar.domain.errors import BadRequest, Forbidden, NotFound

router = APIRouter(tags=["mgmt"])

MGMT_ACTIONS = ("reboot", "reset-task-status")


class MgmtInstanceList(View):
    instances: list[MgmtInstanceView]
    links: list[Link] | None = omitted_if_none()


def _admin(ctx: Ctx) -> None:
    if not ctx.is_admin:
        raise Forbidden("The management API is for administrators.")


@router.get("/mgmt/instances")
def list_mgmt_instances(
    ctx: Ctx,
    state: State,
    linker: Links,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    marker: str | None = None,
    project_id: str | None = None,
) -> MgmtInstanceList:
    """Every project's live instances (or `project_id`'s), as `openstack database instance
    list --all-projects` asks."""
    _admin(ctx)
    with transaction(state.sessions, readonly=True) as session:
        rows, next_marker = repo.list_instances(
            session, project_id=project_id, limit=limit, marker=marker
        )
        labels = catalog.version_labels(session, version_ids=(r.datastore_version_id for r in rows))
    timeout = state.settings.guest_heartbeat_timeout_s
    views = [
        mgmt_instance_view(r, labels[r.datastore_version_id], linker, heartbeat_timeout_s=timeout)
        for r in rows
    ]
    links = None
    if next_marker is not None:
        query = {"limit": str(limit), "marker": next_marker}
        if project_id is not None:
            query["project_id"] = project_id
        href = f"{linker.url(ctx.tenant_id, 'mgmt/instances')}?{urlencode(query)}"
        links = [Link(href=href, rel="next")]
    return MgmtInstanceList(instances=views, links=links)


@router.post("/mgmt/instances/{instance_id}/action", status_code=202)
def mgmt_instance_action(
    instance_id: str, body: Annotated[dict[str, Any], Body()], ctx: Ctx, state: State
) -> Response:
    _admin(ctx)
    unknown = sorted(set(body) - set(MGMT_ACTIONS))
    if unknown:
        raise BadRequest(unknown[0], f"is not an action; choose one of {', '.join(MGMT_ACTIONS)}")
    if len(body) != 1:
        raise BadRequest("body", f"must hold exactly one action: {', '.join(MGMT_ACTIONS)}")
    ((name, args),) = body.items()
    parse(NoArguments, args, name)
    if name == "reboot":
        start_action(instance_id, "reboot", args, None, state)
    else:
        with transaction(state.sessions) as session:
            reset_task(session, instance_id=instance_id)
    return Response(status_code=202)


@router.get("/mgmt/instances/{instance_id}")
def show_mgmt_instance(
    instance_id: str, ctx: Ctx, state: State, linker: Links, deleted: bool = False
) -> MgmtInstanceEnvelope:
    _admin(ctx)
    with transaction(state.sessions, readonly=True) as session:
        row = repo.get_instance(session, instance_id=instance_id, deleted=deleted)
        label = catalog.version_labels(session, version_ids=[row.datastore_version_id])
    view = mgmt_instance_view(
        row,
        label[row.datastore_version_id],
        linker,
        heartbeat_timeout_s=state.settings.guest_heartbeat_timeout_s,
    )
    return MgmtInstanceEnvelope(instance=view)


# python-troveclient's `openstack database instance reboot NAME` looks the instance up by
# name and then puts the `repr` of the object it found where the id belongs:
# `/mgmt/instances/<Instance access=..., id=<uuid>, ...>/action` (a reboot by id is
# well formed). Its own id is read back from that text, so the command works as typed.
_CLIENT_REPR = re.compile(r"^<Instance .*?(?:^|[ ,])id=([0-9a-fA-F-]{36})[,>]", re.DOTALL)


@router.post("/mgmt/instances/{reference:path}", status_code=202, include_in_schema=False)
def mgmt_instance_action_by_repr(
    reference: str, body: Annotated[dict[str, Any], Body()], ctx: Ctx, state: State
) -> Response:
    _admin(ctx)
    found = _CLIENT_REPR.match(reference.removesuffix("/action"))
    if not reference.endswith("/action") or found is None:
        raise NotFound("Instance", reference)
    return mgmt_instance_action(found.group(1), body, ctx, state)
