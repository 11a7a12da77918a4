"""Trove v1.0 routes, one small module per noun. Every router here is mounted under
`/v1.0/{tenant_id}` and needs a token; `versions` is the unauthenticated root, and
`guest` the agents' endpoint (`/guest/v1`, the instance's secret instead of a token),
`stacks` the wait condition signal endpoint (`/orchestration/v1`, the handle's token)."""

from __future__ import annotations

from fastapi import APIRouter

from cellar.api.routes import (
    actions,
    backup_schedules,
    backups,
    clusters,
    configurations,
    databases,
    datastores,
    events,
    flavors,
    guest,
    instances,
    mgmt,
    quotas,
    root,
    security_group_rules,
    security_groups,
    stacks,
    users,
    versions,
)

ROUTERS: tuple[APIRouter, ...] = (
    flavors.router,
    datastores.router,
    instances.router,
    actions.router,
    events.router,
    security_groups.router,
    security_group_rules.router,
    root.router,
    databases.router,
    users.router,
    clusters.router,
    mgmt.router,
    backups.router,
    backup_schedules.router,
    quotas.router,
    configurations.router,
)

__all__ = ["ROUTERS", "guest", "stacks", "versions"]
