"""The guest's heartbeats, kept on the instance row (Trove's conductor `heartbeat` with
its `conductor_lastseen` check).

A heartbeat sets the service status and `service_updated_at` (the control plane's clock at
receipt) and remembers the guest's own `sent` time; one sent no later than the last one
accepted is dropped, so heartbeats that arrive out of order never move the status back.
The task status is never touched, and a deleted instance takes none.

A guest that has reported and then falls silent (`heartbeat_expired`) is shown as
FAILED_TIMEOUT_GUESTAGENT (status ERROR) while the instance is idle (task NONE), as
Trove's `load_instance_with_info` does; an instance whose guest never reported (the fake
backend has no agent) is never judged by this rule.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from cellar.db.instances import get_instance, utcnow
from cellar.db.models import Instance
from cellar.domain.status import InstanceTask, ServiceStatus


def record_heartbeat(
    session: Session, *, instance_id: str, status: ServiceStatus, sent: float
) -> bool:
    """Store one heartbeat; False if it was dropped (older than the last, or the instance
    is deleted). NotFound if the instance never existed."""
    get_instance(session, instance_id=instance_id, deleted=True)
    result = session.execute(
        update(Instance)
        .where(
            Instance.id == instance_id,
            Instance.deleted.is_(False),
            or_(Instance.guest_heartbeat_sent.is_(None), Instance.guest_heartbeat_sent < sent),
        )
        .values(service_status=status.value, service_updated_at=utcnow(), guest_heartbeat_sent=sent)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def heartbeat_expired(row: Instance, *, timeout_s: float, now: datetime | None = None) -> bool:
    """Whether the instance's guest reported once and has been silent past `timeout_s`
    while the instance is idle."""
    if row.guest_heartbeat_sent is None or row.service_updated_at is None:
        return False
    if row.task_status != InstanceTask.NONE.value:
        return False
    return (now or utcnow()) - row.service_updated_at > timedelta(seconds=timeout_s)


def shown_service_status(row: Instance, *, timeout_s: float | None) -> ServiceStatus:
    """The service status the API derives the instance's status from."""
    if timeout_s is not None and heartbeat_expired(row, timeout_s=timeout_s):
        return ServiceStatus.FAILED_TIMEOUT_GUESTAGENT
    return ServiceStatus(row.service_status)
