"""`GET /instances/{id}/events` and `GET /clusters/{id}/events` (cellar's own): every step
of every operation, oldest first."""

from __future__ import annotations

from fastapi import APIRouter

from cellar.api.auth import Ctx
from cellar.api.deps import State
from cellar.api.views.common import View
from cellar.api.views.events import EventView, event_view
from cellar.db import clusters as clusters_repo
from cellar.db import instances as repo
from cellar.db.engine import transaction
from cellar.db.events import list_events

router = APIRouter(tags=["instances"])


class EventList(View):
    events: list[EventView]


@router.get("/instances/{instance_id}/events")
def instance_events(instance_id: str, ctx: Ctx, state: State) -> EventList:
    with transaction(state.sessions) as session:
        repo.get_instance(session, instance_id=instance_id, project_id=ctx.scope)
        rows = list_events(session, instance_id=instance_id)
    return EventList(events=[event_view(r) for r in rows])


@router.get("/clusters/{cluster_id}/events", tags=["clusters"])
def cluster_events(cluster_id: str, ctx: Ctx, state: State) -> EventList:
    """The cluster's own jobs (build, grow, shrink, switchover, failover), step by step;
    each member's own events stay under its instance."""
    with transaction(state.sessions) as session:
        clusters_repo.get_cluster(session, cluster_id=cluster_id, project_id=ctx.scope)
        rows = list_events(session, instance_id=cluster_id)
    return EventList(events=[event_view(r) for r in rows])
