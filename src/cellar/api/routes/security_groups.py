"""`GET /security-groups[/{id}]`: the project's groups (one per instance) with their rules."""

from __future__ import annotations

from fastapi import APIRouter

from cellar.api.auth import Ctx
from cellar.api.deps import Links, State
from cellar.api.views.security_groups import (
    SecurityGroupEnvelope,
    SecurityGroupList,
    security_group_view,
)
from cellar.db import security_groups as repo
from cellar.db.engine import transaction

router = APIRouter(tags=["security-groups"])


@router.get("/security-groups")
def list_security_groups(ctx: Ctx, state: State, linker: Links) -> SecurityGroupList:
    with transaction(state.sessions) as session:
        groups = repo.list_security_groups(session, project_id=ctx.tenant_id)
        rules = repo.list_rules(session, group_ids=[g.id for g in groups])
    return SecurityGroupList(
        security_groups=[security_group_view(g, rules[g.id], linker) for g in groups]
    )


@router.get("/security-groups/{group_id}")
def show_security_group(
    group_id: str, ctx: Ctx, state: State, linker: Links
) -> SecurityGroupEnvelope:
    with transaction(state.sessions) as session:
        group = repo.get_security_group(session, group_id=group_id, project_id=ctx.scope)
        rules = repo.list_rules(session, group_ids=[group.id])[group.id]
    return SecurityGroupEnvelope(security_group=security_group_view(group, rules, linker))
