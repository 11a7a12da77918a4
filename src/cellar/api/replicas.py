"""Trove's door to replication: `replica_of` and `replica_count` on instance create, and
detaching a replica (`PATCH /instances/{id}` with `replica_of: null`).

One model serves both doors: a primary whose replicas come through `replica_of` is the
primary of a replication group like a cluster's, an implicit one (its id is the
primary's, it is not listed under /clusters and has no endpoints). Adding replicas is
that group's grow, so a replica is built exactly as a cluster member is: `pg_basebackup`
from the primary through a slot of its own, with its own flavor and volume (without
them it copies its primary's; its volume is never smaller, since it holds a copy).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cellar.api import cluster_provisioning
from cellar.api.provisioning import resolve_flavor, resolve_version
from cellar.api.schemas import ClusterMember, InstanceCreate, VolumeCreate
from cellar.config import Settings
from cellar.db import clusters as clusters_repo
from cellar.db import instances as instances_repo
from cellar.db.jobs import submit_job
from cellar.db.models import Cluster, Instance
from cellar.domain.clusters import ClusterTask
from cellar.domain.errors import BadRequest, NotFound
from cellar.domain.status import InstanceTask, ServerStatus, ServiceStatus, check_can_act
from cellar.taskmanager.failover_watch import check_idle, port_of, take_cluster
from cellar.taskmanager.kinds import JobKind


def find_instance(session: Session, *, ref: str, project_id: str, field: str) -> Instance:
    """The project's live instance with this id, or else this (unique) name."""
    try:
        return instances_repo.get_instance(session, instance_id=ref, project_id=project_id)
    except NotFound:
        pass
    rows = list(
        session.scalars(
            select(Instance).where(
                Instance.tenant_id == project_id, Instance.name == ref, Instance.deleted.is_(False)
            )
        )
    )
    if len(rows) == 1:
        return rows[0]
    if rows:
        raise BadRequest(field, f"{len(rows)} instances are named {ref!r}; give the id")
    raise BadRequest(field, f"no instance {ref!r}")


def provision_replicas(
    session: Session, *, request: InstanceCreate, project_id: str, settings: Settings
) -> list[Instance]:
    """The replicas' rows and the job that builds them (the group's grow)."""
    assert request.replica_of is not None
    primary = find_instance(
        session, ref=request.replica_of, project_id=project_id, field="instance.replica_of"
    )
    if primary.replica_of_id is not None:
        raise BadRequest(
            "instance.replica_of",
            f"instance {primary.id} is itself a replica of {primary.replica_of_id}: "
            "replicate the primary",
        )
    for field in ("users", "databases"):
        if getattr(request, field):
            raise BadRequest(
                f"instance.{field}", "a replica has its primary's; create them on the primary"
            )
    if request.configuration is not None:
        raise BadRequest(
            "instance.configuration", "a replica has its primary's configuration group"
        )
    if request.datastore is not None:
        _datastore, version = resolve_version(session, ref=request.datastore)
        if version.id != primary.datastore_version_id:
            raise BadRequest("instance.datastore", "a replica runs its primary's datastore version")
    check_can_act(
        InstanceTask(primary.task_status),
        ServerStatus(primary.server_status) if primary.server_status else None,
        ServiceStatus(primary.service_status),
    )
    flavor_id = primary.flavor_id
    if request.flavorRef is not None:
        flavor_id = resolve_flavor(session, ref=request.flavorRef, field="instance.flavorRef").id
    size = request.volume.size if request.volume is not None else primary.volume_size
    if size < primary.volume_size:
        raise BadRequest(
            "instance.volume.size",
            f"must be at least the primary's {primary.volume_size} GB: a replica holds a copy",
        )
    count = request.replica_count or 1
    names = [request.name] + [f"{request.name}-{i}" for i in range(2, count + 1)]
    group = _group_of(session, primary)
    members = [
        ClusterMember(flavorRef=flavor_id, volume=VolumeCreate(size=size), name=name)
        for name in names
    ]
    specs = cluster_provisioning.grow(session, cluster=group, requested=members, settings=settings)
    return [instances_repo.get_instance(session, instance_id=s.instance_id) for s in specs]


def _group_of(session: Session, primary: Instance) -> Cluster:
    """The primary's replication group: its cluster, or a new implicit one."""
    if primary.cluster_id is not None:
        return clusters_repo.get_cluster(session, cluster_id=primary.cluster_id)
    group = clusters_repo.create_cluster(
        session,
        id=primary.id,
        tenant_id=primary.tenant_id,
        name=primary.name,
        datastore_version_id=primary.datastore_version_id,
        provisioning_engine=primary.provisioning_engine,
        implicit=True,
    )
    group.task_status = ClusterTask.NONE.value.name  # a group made whole, idle at once
    primary.cluster_id = group.id
    session.flush()
    return group


def detach(session: Session, *, replica: Instance) -> None:
    """`replica_of: null`: the replica is promoted into a primary of its own and leaves
    its group (its peers stop letting it in, its slot on the old primary is dropped)."""
    if replica.replica_of_id is None or replica.cluster_id is None:
        raise BadRequest("instance.replica_of", f"instance {replica.id} is not a replica")
    group = clusters_repo.get_cluster(session, cluster_id=replica.cluster_id)
    check_idle(clusters_repo.members(session, cluster_id=group.id), "instance.replica_of")
    take_cluster(session, group, ClusterTask.SHRINKING_CLUSTER)
    instances_repo.change_task(
        session, instance_id=replica.id, target=InstanceTask.PROMOTING,
        expected=InstanceTask(replica.task_status),
    )  # fmt: skip
    submit_job(
        session,
        kind=JobKind.DETACH_CLUSTER.value,
        instance_id=group.id,
        args={
            "replica": replica.id,
            "primary": replica.replica_of_id,
            "port": port_of(session, group),
        },
    )
