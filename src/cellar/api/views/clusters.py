"""The cluster view (Trove's `cluster/views.py`), with each member's role, status, size,
address and replication lag."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cellar.api.views.common import Link, Linker, View, isotime, omitted_if_none
from cellar.api.views.instances import (
    DatastoreLabel,
    FaultView,
    FlavorLink,
    VolumeView,
    instance_status,
)
from cellar.db.models import Cluster, Instance
from cellar.domain.clusters import ClusterTask, endpoints
from cellar.domain.replication import Role


class ClusterTaskView(View):
    id: int
    name: str
    description: str


class MemberView(View):
    id: str
    name: str
    type: str
    role: str
    status: str
    links: list[Link]
    flavor: FlavorLink
    volume: VolumeView
    ip: list[str]
    hostname: str | None
    # Bytes of WAL a replica has not replayed yet; None when unknown (not streaming yet,
    # or its primary could not be asked).
    replication_lag_bytes: int | None = None


class EndpointsView(View):
    """DNS names: `rw` answers with the primary's address, `ro` with each replica's."""

    rw: str
    ro: str


class ClusterView(View):
    id: str
    name: str
    task: ClusterTaskView
    created: str | None
    updated: str | None
    links: list[Link]
    datastore: DatastoreLabel
    instances: list[MemberView]
    endpoints: EndpointsView
    ip: list[str]
    provisioning_engine: str
    fault: FaultView | None = omitted_if_none()


class ClusterEnvelope(View):
    cluster: ClusterView


class ClusterList(View):
    clusters: list[ClusterView]


def role_of(member: Instance) -> Role:
    return Role.REPLICA if member.replica_of_id else Role.PRIMARY


def cluster_view(
    row: Cluster,
    members: Sequence[Instance],
    label: tuple[str, str],
    linker: Linker,
    *,
    lag: Mapping[str, int | None] | None = None,
    heartbeat_timeout_s: float | None = None,
    zone: str,
) -> ClusterView:
    task = ClusterTask.named(row.task_status).value
    fault = None
    if row.fault_message:
        fault = FaultView(
            message=row.fault_message, created=isotime(row.fault_at), details=row.fault_details
        )
    views = [
        MemberView(
            id=m.id,
            name=m.name,
            type="member",
            role=role_of(m).value,
            status=instance_status(m, heartbeat_timeout_s=heartbeat_timeout_s),
            links=linker.links(row.tenant_id, "instances", m.id),
            flavor=FlavorLink(
                id=m.flavor_id, links=linker.links(row.tenant_id, "flavors", m.flavor_id)
            ),
            volume=VolumeView(size=m.volume_size),
            ip=[str(a) for a in m.addresses or []],
            hostname=m.hostname,
            replication_lag_bytes=(lag or {}).get(m.id),
        )
        for m in members
    ]
    return ClusterView(
        id=row.id,
        name=row.name,
        task=ClusterTaskView(id=task.id, name=task.name, description=task.description),
        created=isotime(row.created),
        updated=isotime(row.updated),
        links=linker.links(row.tenant_id, "clusters", row.id),
        datastore=DatastoreLabel(type=label[0], version=label[1]),
        instances=views,
        endpoints=EndpointsView(**vars(endpoints(row.name, zone))),
        ip=[ip for v in views for ip in v.ip],
        provisioning_engine=row.provisioning_engine,
        fault=fault,
    )
