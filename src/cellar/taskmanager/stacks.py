"""The orchestration service the task manager gives the orchestrator and migration
managers: the embedded engine, its stacks in cellar's database, its resources on the
same drivers as everything else (fake or local cloud)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from cellar.config import Settings
from cellar.db import catalog
from cellar.db.engine import transaction
from cellar.db.stacks import DbSignalStore, DbStackStore
from cellar.domain.specs import FlavorSpec
from cellar.drivers.registry import Services
from cellar.orchestration.local.service import (
    LocalStackService,
    api_signal_url,
    default_signal_url,
)

# Managers that work through stacks.
NEEDS_STACKS = frozenset({"orchestrator", "migration"})


def build_stack_service(
    settings: Settings, sessions: sessionmaker[Session], services: Services
) -> LocalStackService:
    def flavors(flavor_id: str) -> FlavorSpec:
        with transaction(sessions, readonly=True) as session:
            return catalog.flavor_spec(catalog.get_flavor(session, flavor_id=flavor_id))

    store = DbStackStore(sessions, secret_key_path=settings.secret_key_path)
    # What a dead engine left in progress is failed when a task manager resumes the job
    # of the stack's instance (`LocalStackService.take_over`), not here: other task
    # managers' engines may be running on the same database.
    # Guests that run an agent signal their wait condition through the API themselves.
    base_url = services.guest.control_plane_url
    return LocalStackService.build(
        services,
        flavors=flavors,
        signal_url=default_signal_url if base_url is None else api_signal_url(base_url),
        store=store,
        signals=DbSignalStore(sessions),
        poll_interval=settings.poll_interval_s,
    )
