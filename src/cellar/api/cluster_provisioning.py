"""Cluster requests made into rows and jobs, each in one transaction: a create writes the
cluster, one instance per member (the first is the primary, the others replicate it) and
the provision job; a grow writes the new members and its job; a shrink marks the members
it removes DELETING and writes its job.

Members are instances (`cluster_id` set; `replica_of_id` names the primary), so each
shows in `GET /instances` and keeps its own flavor and volume: nothing forces them equal.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from cellar.api import configurations
from cellar.api.provisioning import (
    DEFAULT_CIDRS,
    new_spec,
    resolve_flavor,
    resolve_version,
    write_instance,
)
from cellar.api.quota_checks import check_instances
from cellar.api.schemas import ClusterCreate, ClusterMember, ShrinkMember
from cellar.config import Settings
from cellar.db import catalog
from cellar.db import clusters as repo
from cellar.db import configurations as configurations_repo
from cellar.db import instances as instances_repo
from cellar.db.jobs import submit_job
from cellar.db.models import Cluster, DatastoreVersion, Instance
from cellar.domain.clusters import CLUSTER_NAME_PATTERN, ClusterTask, endpoints
from cellar.domain.errors import BadRequest, Conflict
from cellar.domain.specs import InstanceSpec, spec_to_dict
from cellar.domain.status import InstanceTask
from cellar.taskmanager.failover_watch import check_idle, port_of, take_cluster
from cellar.taskmanager.kinds import JobKind


def create(
    session: Session,
    *,
    request: ClusterCreate,
    project_id: str,
    settings: Settings,
    provisioning_engine: str,
) -> Cluster:
    _datastore, version = resolve_version(session, ref=request.datastore, prefix="cluster")
    _check_name(session, request.name, settings.dns_zone)
    access = request.access
    cidrs = tuple(access.allowed_cidrs or ()) if access is not None else ()
    cluster = repo.create_cluster(
        session,
        id=str(uuid.uuid4()),
        tenant_id=project_id,
        name=request.name,
        datastore_version_id=version.id,
        provisioning_engine=provisioning_engine,
    )
    specs = _members(
        session,
        cluster=cluster,
        requested=request.instances,
        field="cluster.instances",
        version=version,
        cidrs=cidrs or DEFAULT_CIDRS,
        primary_id=None,
        settings=settings,
        is_public=access.is_public if access is not None else False,
        first_number=1,
    )
    submit_job(
        session,
        kind=JobKind.PROVISION_CLUSTER.value,
        instance_id=cluster.id,
        args={"members": [spec_to_dict(s) for s in specs]},
    )
    return cluster


def grow(
    session: Session, *, cluster: Cluster, requested: Sequence[ClusterMember], settings: Settings
) -> list[InstanceSpec]:
    current = repo.members(session, cluster_id=cluster.id)
    primary = _primary(current, cluster)
    take_cluster(session, cluster, ClusterTask.GROWING_CLUSTER)
    version = catalog.get_version_by_id(session, version_id=cluster.datastore_version_id)
    access = primary.access or {}
    specs = _members(
        session,
        cluster=cluster,
        requested=requested,
        field="grow",
        version=version,
        cidrs=tuple(access.get("allowed_cidrs") or DEFAULT_CIDRS),
        primary_id=primary.id,
        settings=settings,
        is_public=bool(access.get("is_public", False)),
        first_number=len(current) + 1,
        taken={m.name for m in current},
    )
    args: dict[str, Any] = {"members": [spec_to_dict(s) for s in specs]}
    if primary.configuration_id is not None:  # the new members get the group's values
        group = configurations_repo.get_configuration(
            session, configuration_id=primary.configuration_id
        )
        args["overrides"] = configurations.checked_values(
            session, version_id=group.datastore_version_id, values=group.values, field="values"
        )
        for spec in specs:
            row = instances_repo.get_instance(session, instance_id=spec.instance_id)
            row.configuration_id = group.id
    submit_job(session, kind=JobKind.GROW_CLUSTER.value, instance_id=cluster.id, args=args)
    return specs


def shrink(session: Session, *, cluster: Cluster, requested: Sequence[ShrinkMember]) -> None:
    """Refused before anything is written: a member not in the cluster, the primary, or
    every member (delete the cluster instead)."""
    current = {m.id: m for m in repo.members(session, cluster_id=cluster.id)}
    ids: list[str] = []
    for i, item in enumerate(requested):
        field = f"shrink[{i}].id"
        member = current.get(item.id)
        if member is None:
            raise BadRequest(field, f"{item.id!r} is not a member of cluster {cluster.id}")
        if member.replica_of_id is None:
            raise BadRequest(
                field,
                f"{item.id!r} is the primary; promote a replica first "
                "(promote_to_replica_source), then shrink the old primary",
            )
        if item.id in ids:
            raise BadRequest(field, f"{item.id!r} is given twice")
        ids.append(item.id)
    if len(ids) >= len(current):
        raise BadRequest("shrink", "a cluster keeps at least one member; delete it instead")
    take_cluster(session, cluster, ClusterTask.SHRINKING_CLUSTER)
    for iid in ids:
        instances_repo.change_task(session, instance_id=iid, target=InstanceTask.DELETING)
    submit_job(
        session,
        kind=JobKind.SHRINK_CLUSTER.value,
        instance_id=cluster.id,
        args={"instance_ids": ids},
    )


def delete(session: Session, *, cluster: Cluster) -> None:
    """From any live task; a delete already under way is accepted without a new job."""
    current = ClusterTask.named(cluster.task_status)
    if current is ClusterTask.DELETING:
        return
    repo.change_cluster_task(
        session, cluster_id=cluster.id, target=ClusterTask.DELETING, expected=current
    )
    ids = []
    for member in repo.members(session, cluster_id=cluster.id):
        ids.append(member.id)
        if member.task_status != InstanceTask.DELETING.value:
            instances_repo.change_task(session, instance_id=member.id, target=InstanceTask.DELETING)
    submit_job(
        session,
        kind=JobKind.DELETE_CLUSTER.value,
        instance_id=cluster.id,
        args={"instance_ids": ids},
    )


def _primary(current: Sequence[Instance], cluster: Cluster) -> Instance:
    for member in current:
        if member.replica_of_id is None:
            return member
    raise BadRequest("cluster", f"cluster {cluster.id} has no primary")


def _members(
    session: Session,
    *,
    cluster: Cluster,
    requested: Sequence[ClusterMember],
    field: str,
    version: DatastoreVersion,
    cidrs: tuple[str, ...],
    primary_id: str | None,
    settings: Settings,
    is_public: bool,
    first_number: int,
    taken: set[str] | None = None,
) -> list[InstanceSpec]:
    """Specs and rows of new members; with `primary_id` None the first is the primary."""
    datastore = catalog.get_datastore(session, id_or_name=version.datastore_id)
    check_instances(
        session,
        project_id=cluster.tenant_id,
        settings=settings,
        flavors=[
            resolve_flavor(session, ref=m.flavorRef, field=f"{field}[{i}].flavorRef")
            for i, m in enumerate(requested)
        ],
        volume_gb=sum(m.volume.size for m in requested),
    )
    names = set(taken or ())
    specs: list[InstanceSpec] = []
    given = {m.name for m in requested if m.name}
    number = first_number
    for i, member in enumerate(requested):
        flavor = resolve_flavor(session, ref=member.flavorRef, field=f"{field}[{i}].flavorRef")
        name = member.name
        if not name:  # `<cluster>-<n>`, the first n no member (live or asked for) has
            while f"{cluster.name}-{number}" in names | given:
                number += 1
            name = f"{cluster.name}-{number}"
        if name in names:
            raise BadRequest(f"{field}[{i}].name", f"the cluster has a member {name!r} already")
        names.add(name)
        primary = (
            primary_id if primary_id is not None else (specs[0].instance_id if specs else None)
        )
        spec = new_spec(
            name=name,
            project_id=cluster.tenant_id,
            flavor=flavor,
            volume_size_gb=member.volume.size,
            datastore=datastore,
            version=version,
            allowed_cidrs=cidrs,
            dns_zone=settings.dns_zone,
            replication_group=cluster.id,
            replica_of=primary,
        )
        write_instance(
            session,
            spec=spec,
            flavor_id=flavor.id,
            version_id=version.id,
            is_public=is_public,
            provisioning_engine=cluster.provisioning_engine,
            cluster_id=cluster.id,
        )
        specs.append(spec)
    return specs


def switchover(session: Session, *, cluster: Cluster, candidate: Instance) -> None:
    """`promote_to_replica_source` on a replica: a planned switchover, the old primary
    and the other replicas captured now (the job repeats them on a resume)."""
    field = "promote_to_replica_source"
    if candidate.replica_of_id is None:
        raise BadRequest(field, f"instance {candidate.id} is the primary already")
    current = repo.members(session, cluster_id=cluster.id)
    old = _primary(current, cluster)
    check_idle(current, field)
    take_cluster(session, cluster, ClusterTask.PROMOTING)
    instances_repo.change_task(
        session, instance_id=candidate.id, target=InstanceTask.PROMOTING,
        expected=InstanceTask(candidate.task_status),
    )  # fmt: skip
    submit_job(
        session,
        kind=JobKind.SWITCHOVER_CLUSTER.value,
        instance_id=cluster.id,
        args={
            "candidate": candidate.id,
            "old_primary": old.id,
            "replicas": [m.id for m in current if m.id not in (candidate.id, old.id)],
            "port": port_of(session, cluster),
        },
    )


def _check_name(session: Session, name: str, zone: str) -> None:
    """A cluster's name makes its endpoints' names: a DNS label, one live cluster each."""
    names = endpoints(name, zone)
    if not re.match(CLUSTER_NAME_PATTERN, name):
        raise BadRequest(
            "cluster.name",
            f"must be a DNS label (letters, digits and inner hyphens, at most 60): it names "
            f"the cluster's endpoints {names.rw} and {names.ro}",
        )
    taken = [
        c for c in repo.list_clusters(session, project_id=None) if c.name.lower() == name.lower()
    ]
    if taken:
        raise Conflict(
            f"cluster.name: another cluster holds the endpoints {names.rw} and {names.ro}; "
            "choose another name"
        )
