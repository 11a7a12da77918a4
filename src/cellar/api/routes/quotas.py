"""Quotas and limits: `GET /limits` (the caller's project's absolute limits, Trove's
`max_<resource>`), `GET /mgmt/quotas/{project}` (usage and limit of each resource: the
caller's own project, or any for administrators) and `PUT /mgmt/quotas/{project}`
(administrators). A create or resize past a quota is refused with 413 before anything is
written (`cellar.db.quotas.check`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from cellar.api.auth import Ctx
from cellar.api.deps import State
from cellar.api.quota_checks import quota_defaults
from cellar.api.schemas import QuotaUpdateRequest
from cellar.api.validation import parse
from cellar.db import quotas as repo
from cellar.db.engine import transaction
from cellar.domain.errors import Forbidden
from cellar.domain.quotas import RESOURCES

router = APIRouter(tags=["quotas"])


@router.get("/limits")
def list_limits(ctx: Ctx, state: State) -> dict[str, Any]:
    """Trove's view: one ABSOLUTE entry; cellar applies no rate limits, so no others."""
    with transaction(state.sessions, readonly=True) as session:
        found = repo.limits(session, project_id=ctx.tenant_id, defaults=quota_defaults(state))
    absolute: dict[str, Any] = {"verb": "ABSOLUTE"}
    absolute.update({f"max_{name}": found[name] for name in RESOURCES})
    return {"limits": [absolute]}


@router.get("/mgmt/quotas/{project_id}")
def show_quotas(project_id: str, ctx: Ctx, state: State) -> dict[str, Any]:
    if project_id != ctx.tenant_id and not ctx.is_admin:
        raise Forbidden(f"Only administrators may see the quotas of project {project_id}.")
    with transaction(state.sessions, readonly=True) as session:
        found = repo.limits(session, project_id=project_id, defaults=quota_defaults(state))
        used = repo.usage(session, project_id=project_id)
    return {
        "quotas": [
            {"resource": name, "in_use": used[name], "reserved": 0, "limit": found[name]}
            for name in RESOURCES
        ]
    }


@router.put("/mgmt/quotas/{project_id}")
def update_quotas(
    project_id: str, ctx: Ctx, state: State, body: Annotated[Any, Body()] = None
) -> dict[str, Any]:
    if not ctx.is_admin:
        raise Forbidden("Only administrators may change quotas.")
    values = {k: v for k, v in parse(QuotaUpdateRequest, body, "").quotas.items() if v is not None}
    with transaction(state.sessions) as session:
        repo.set_limits(session, project_id=project_id, values=values)
    return {"quotas": values}
