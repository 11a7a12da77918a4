"""The instance view (Trove's `instance/views.py`, with HEAD's additions)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cellar.api.views.common import Link, Linker, View, isotime, omitted_if_none
from cellar.db.heartbeats import shown_service_status
from cellar.db.models import Instance
from cellar.domain.status import InstanceTask, ServerStatus, derive_status, operating_status


class FlavorLink(View):
    id: str
    links: list[Link]


class DatastoreLabel(View):
    type: str
    version: str


class VolumeView(View):
    size: int


class FaultView(View):
    message: str
    created: str | None
    details: str | None


class InstanceView(View):
    id: str
    name: str
    status: str
    # Trove's (Wallaby on): the datastore's state, HEALTHY when it accepts connections.
    operating_status: str
    task: str
    links: list[Link]
    flavor: FlavorLink
    datastore: DatastoreLabel
    volume: VolumeView
    ip: list[str]
    # Trove's (Ussuri on): each address with its type; `ip` is its older form.
    addresses: list[dict[str, str]]
    hostname: str | None
    created: str | None
    updated: str | None
    access: dict[str, Any]
    provisioning_engine: str
    stack_id: str | None
    cluster_id: str | None = omitted_if_none()
    # Trove's replication fields: the primary this instance replicates, and its replicas.
    replica_of: dict[str, Any] | None = omitted_if_none()
    # On a primary's detail view (Trove's): its replicas, each {id, links}.
    replicas: list[dict[str, Any]] | None = omitted_if_none()
    # On the detail view, where the cloud keeps backups: the instants it can be restored
    # to (RDS's earliest and latest restorable time), once it has a backup.
    restorable_from: str | None = omitted_if_none()
    restorable_until: str | None = omitted_if_none()
    fault: FaultView | None = omitted_if_none()
    # The attached configuration group (Trove's), {id, links}.
    configuration: dict[str, Any] | None = omitted_if_none()


class InstanceEnvelope(View):
    instance: InstanceView


class InstanceList(View):
    instances: list[InstanceView]
    links: list[Link] | None = omitted_if_none()


def instance_status(row: Instance, *, heartbeat_timeout_s: float | None = None) -> str:
    """The derived status; with `heartbeat_timeout_s`, a guest that reported and then fell
    silent that long shows as FAILED_TIMEOUT_GUESTAGENT (`db.heartbeats`)."""
    server = ServerStatus(row.server_status) if row.server_status else None
    service = shown_service_status(row, timeout_s=heartbeat_timeout_s)
    return derive_status(InstanceTask(row.task_status), server, service)


def instance_operating_status(row: Instance, *, heartbeat_timeout_s: float | None = None) -> str:
    server = ServerStatus(row.server_status) if row.server_status else None
    service = shown_service_status(row, timeout_s=heartbeat_timeout_s)
    return operating_status(InstanceTask(row.task_status), server, service)


def instance_view(
    row: Instance,
    label: tuple[str, str],
    linker: Linker,
    *,
    heartbeat_timeout_s: float | None = None,
    replicas: Sequence[str] = (),
) -> InstanceView:
    fault = None
    if row.fault_message:
        fault = FaultView(
            message=row.fault_message, created=isotime(row.fault_at), details=row.fault_details
        )
    return InstanceView(
        id=row.id,
        name=row.name,
        status=instance_status(row, heartbeat_timeout_s=heartbeat_timeout_s),
        operating_status=instance_operating_status(row, heartbeat_timeout_s=heartbeat_timeout_s),
        task=row.task_status,
        links=linker.links(row.tenant_id, "instances", row.id),
        flavor=FlavorLink(
            id=row.flavor_id, links=linker.links(row.tenant_id, "flavors", row.flavor_id)
        ),
        datastore=DatastoreLabel(type=label[0], version=label[1]),
        volume=VolumeView(size=row.volume_size),
        ip=[str(a) for a in row.addresses or []],
        addresses=[{"address": str(a), "type": "private"} for a in row.addresses or []],
        hostname=row.hostname,
        created=isotime(row.created),
        updated=isotime(row.updated),
        access=dict(row.access or {}),
        provisioning_engine=row.provisioning_engine,
        stack_id=row.stack_id,
        cluster_id=row.cluster_id,
        replica_of=(
            {
                "id": row.replica_of_id,
                "links": linker.links(row.tenant_id, "instances", row.replica_of_id),
            }
            if row.replica_of_id
            else None
        ),
        replicas=[{"id": r, "links": linker.links(row.tenant_id, "instances", r)} for r in replicas]
        or None,
        fault=fault,
        configuration=(
            {
                "id": row.configuration_id,
                "links": linker.links(row.tenant_id, "configurations", row.configuration_id),
            }
            if row.configuration_id
            else None
        ),
    )
