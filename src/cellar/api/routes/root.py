"""`POST /instances/{id}/root` (Trove's enable root): a new password for the datastore's
superuser, returned to this caller once. The control plane stores and logs it nowhere:
the guest sets it and hands it back in the same answer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cellar.api.auth import Ctx
from cellar.api.deps import State
from cellar.db import instances as repo
from cellar.db.engine import transaction
from cellar.domain.errors import OperationIsNotSupported, UnprocessableEntity
from cellar.domain.status import InstanceTask, ServerStatus, ServiceStatus, check_can_act
from cellar.drivers.base import DriverOperationNotSupported
from cellar.drivers.guest.base import GuestError

router = APIRouter(tags=["instances"])


@router.post("/instances/{instance_id}/root", status_code=200)
def enable_root(instance_id: str, ctx: Ctx, state: State) -> dict[str, Any]:
    with transaction(state.sessions, readonly=True) as session:
        row = repo.get_instance(session, instance_id=instance_id, project_id=ctx.scope)
        check_can_act(
            InstanceTask(row.task_status),
            ServerStatus(row.server_status) if row.server_status else None,
            ServiceStatus(row.service_status),
        )
    try:
        name, password = state.guest().enable_root(instance_id)
    except DriverOperationNotSupported as exc:
        raise OperationIsNotSupported("enable_root", state.settings.backend) from exc
    except GuestError as exc:
        raise UnprocessableEntity(f"The instance's guest refused: {exc.message}") from exc
    return {"user": {"name": name, "password": password}}
