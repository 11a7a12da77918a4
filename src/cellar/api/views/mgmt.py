"""The management view of an instance (Trove's `extensions/mgmt/instances/views.py`):
the instance view plus what only an operator sees, the cloud resources behind it.

Read from the instance's row, as the control plane last recorded it; the cloud is not
asked. So `server.host` and `volume.used`, which only the cloud knows, are left out.
"""

from __future__ import annotations

from typing import Any

from cellar.api.views.common import Linker, View, isotime, omitted_if_none
from cellar.api.views.instances import InstanceView, VolumeView, instance_view
from cellar.db.heartbeats import shown_service_status
from cellar.db.models import Instance
from cellar.domain.specs import resource_name


class MgmtServerView(View):
    id: str
    name: str
    status: str | None
    tenant_id: str
    host: str | None = omitted_if_none()


class MgmtVolumeView(VolumeView):
    id: str | None
    used: float | None = omitted_if_none()


class MgmtInstanceView(InstanceView):
    volume: MgmtVolumeView
    # Shown even when None: an operator asks what the instance is attached to.
    cluster_id: str | None = None
    replica_of: dict[str, Any] | None = None
    server: MgmtServerView | None
    service_status: str
    tenant_id: str
    deleted: bool
    deleted_at: str | None
    task_description: str | None


class MgmtInstanceEnvelope(View):
    instance: MgmtInstanceView


def mgmt_instance_view(
    row: Instance,
    label: tuple[str, str],
    linker: Linker,
    *,
    heartbeat_timeout_s: float | None = None,
) -> MgmtInstanceView:
    base = instance_view(row, label, linker, heartbeat_timeout_s=heartbeat_timeout_s)
    server = None
    if row.compute_instance_id:
        server = MgmtServerView(
            id=row.compute_instance_id,
            name=resource_name(row.id),
            status=row.server_status,
            tenant_id=row.tenant_id,
        )
    return MgmtInstanceView(
        **{
            **dict(base),
            "volume": MgmtVolumeView(id=row.volume_id, size=row.volume_size),
            "server": server,
            "service_status": shown_service_status(row, timeout_s=heartbeat_timeout_s).value,
            "tenant_id": row.tenant_id,
            "deleted": row.deleted,
            "deleted_at": isotime(row.deleted_at),
            "task_description": row.task_description,
        }
    )
