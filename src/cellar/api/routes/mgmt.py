"""`/mgmt/instances/{id}`: Trove's management view of an instance, for administrators.

Admins only, checked before the instance is looked up: a non-admin gets 403 whether or
not the id exists. An admin sees any project's instance from any project's path;
`deleted=true` shows a deleted one too, as Trove's does.
"""

from __future__ import annotations

from fastapi import APIRouter

from cellar.api.auth import Ctx
from cellar.api.deps import Links, State
from cellar.api.views.mgmt import MgmtInstanceEnvelope, mgmt_instance_view
from cellar.db import catalog
from cellar.db import instances as repo
from cellar.db.engine import transaction
from cellar.domain.errors import Forbidden

router = APIRouter(tags=["mgmt"])


@router.get("/mgmt/instances/{instance_id}")
def show_mgmt_instance(
    instance_id: str, ctx: Ctx, state: State, linker: Links, deleted: bool = False
) -> MgmtInstanceEnvelope:
    if not ctx.is_admin:
        raise Forbidden("The management API is for administrators.")
    with transaction(state.sessions, readonly=True) as session:
        row = repo.get_instance(session, instance_id=instance_id, deleted=deleted)
        label = catalog.version_labels(session, version_ids=[row.datastore_version_id])
    view = mgmt_instance_view(
        row,
        label[row.datastore_version_id],
        linker,
        heartbeat_timeout_s=state.settings.guest_heartbeat_timeout_s,
    )
    return MgmtInstanceEnvelope(instance=view)
