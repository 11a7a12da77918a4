"""Quota limits (stored per project, defaults from the settings) and usage (counted from
the live instances and backups), and the check a create makes in its own transaction.

The check runs in the transaction that then writes the new rows, serialised per project:
on SQLite every write transaction is already exclusive (BEGIN IMMEDIATE); on PostgreSQL
a transaction-scoped advisory lock on the project stands in. Two creates racing for the
last slot cannot both pass.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from cellar.db.models import Backup, Flavor, Instance, Quota
from cellar.domain import quotas
from cellar.domain.errors import BadRequest, NotFound


def limits(session: Session, *, project_id: str, defaults: Mapping[str, int]) -> dict[str, int]:
    found = dict(defaults)
    rows = session.scalars(select(Quota).where(Quota.tenant_id == project_id))
    found.update({r.resource: r.hard_limit for r in rows if r.resource in found})
    return found


def usage(session: Session, *, project_id: str) -> dict[str, int]:
    live = (Instance.tenant_id == project_id, Instance.deleted.is_(False))
    count, gigabytes = session.execute(
        select(func.count(Instance.id), func.coalesce(func.sum(Instance.volume_size), 0)).where(
            *live
        )
    ).one()
    ram = session.scalar(
        select(func.coalesce(func.sum(Flavor.ram_mb), 0))
        .select_from(Instance)
        .join(Flavor, Flavor.id == Instance.flavor_id)
        .where(*live)
    )
    backups = session.scalar(
        select(func.count(Backup.id)).where(
            Backup.tenant_id == project_id, Backup.deleted.is_(False)
        )
    )
    return {
        quotas.INSTANCES: int(count),
        quotas.RAM: int(ram or 0),
        quotas.VOLUMES: int(gigabytes),
        quotas.BACKUPS: int(backups or 0),
    }


def check(session: Session, *, project_id: str, defaults: Mapping[str, int], **deltas: int) -> None:
    """QuotaExceeded (413) if the deltas take the project past a limit; call it in the
    transaction that writes what the deltas count, before writing it."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"cellar-quota:{project_id}"},
        )
    quotas.check(
        limits(session, project_id=project_id, defaults=defaults),
        usage(session, project_id=project_id),
        deltas,
    )


def set_limits(session: Session, *, project_id: str, values: Mapping[str, int]) -> None:
    """Store a project's limits (Trove's `PUT /mgmt/quotas`): an unknown resource is
    NotFound (Trove's `QuotaResourceUnknown`, 404), a limit below -1 a BadRequest."""
    for name, limit in values.items():
        if name not in quotas.RESOURCES:
            raise NotFound("Quota resource", name)
        if limit < quotas.UNLIMITED:
            raise BadRequest(f"quotas.{name}", f"limit {limit} is too small: must be at least -1")
    for name, limit in values.items():
        row = session.get(Quota, (project_id, name))
        if row is None:
            session.add(Quota(tenant_id=project_id, resource=name, hard_limit=limit))
        else:
            row.hard_limit = limit
    session.flush()
