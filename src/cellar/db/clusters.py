"""Persistence of clusters: keyword-only functions that take a session."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cellar.db.instances import utcnow
from cellar.db.models import Cluster, Instance
from cellar.domain.clusters import ClusterTask, check_cluster_transition
from cellar.domain.errors import Conflict, NotFound


def create_cluster(session: Session, **values: Any) -> Cluster:
    now = utcnow()
    row = Cluster(
        task_status=ClusterTask.BUILDING.value.name,
        created=now,
        updated=now,
        deleted=False,
        **values,
    )
    session.add(row)
    session.flush()
    return row


def get_cluster(
    session: Session, *, cluster_id: str, project_id: str | None = None, deleted: bool = False
) -> Cluster:
    """The cluster, or NotFound; another project's cluster is NotFound too."""
    row = session.get(Cluster, cluster_id)
    if (
        row is None
        or (row.deleted and not deleted)
        or (project_id is not None and row.tenant_id != project_id)
    ):
        raise NotFound("Cluster", cluster_id)
    return row


def list_clusters(
    session: Session, *, project_id: str | None, implicit: bool = False
) -> list[Cluster]:
    """Live clusters; with `implicit`, also the groups made by `replica_of`."""
    query = select(Cluster).where(Cluster.deleted.is_(False))
    if not implicit:
        query = query.where(Cluster.implicit.is_(False))
    if project_id is not None:
        query = query.where(Cluster.tenant_id == project_id)
    return list(session.scalars(query.order_by(Cluster.created, Cluster.id)))


def members(session: Session, *, cluster_id: str) -> list[Instance]:
    """The cluster's live members, the primary first, then by creation."""
    rows = session.scalars(
        select(Instance)
        .where(Instance.cluster_id == cluster_id, Instance.deleted.is_(False))
        .order_by(Instance.created, Instance.id)
    )
    return sorted(rows, key=lambda r: r.replica_of_id is not None)


def change_cluster_task(
    session: Session,
    *,
    cluster_id: str,
    target: ClusterTask,
    expected: ClusterTask | None = None,
    **values: Any,
) -> Cluster:
    """Move the cluster's task under the transition rules, as a compare-and-set."""
    row = get_cluster(session, cluster_id=cluster_id, deleted=True)
    current = ClusterTask.named(row.task_status)
    if expected is not None and current is not expected:
        raise Conflict(f"Cluster {cluster_id} is {current.value.name}, not {expected.value.name}.")
    check_cluster_transition(current, target)
    result = session.execute(
        update(Cluster)
        .where(Cluster.id == cluster_id, Cluster.task_status == current.value.name)
        .values(task_status=target.value.name, updated=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"Cluster {cluster_id} changed while this request was handled.")
    session.refresh(row)
    return row


def update_cluster(session: Session, *, cluster_id: str, **values: Any) -> None:
    if "task_status" in values:
        raise ValueError("task_status changes go through change_cluster_task")
    session.execute(
        update(Cluster)
        .where(Cluster.id == cluster_id)
        .values(updated=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
