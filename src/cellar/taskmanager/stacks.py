"""The orchestration service the task manager gives the orchestrator and migration
managers: the embedded engine, its stacks in cellar's database, its resources on the
same drivers as everything else (fake or local cloud)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from cellar.config import Settings
from cellar.db import catalog
from cellar.db.engine import transaction
from cellar.db.stacks import DbStackStore, fail_interrupted_stacks
from cellar.domain.specs import FlavorSpec
from cellar.drivers.registry import Services
from cellar.orchestration.local.service import LocalStackService
from cellar.orchestration.stacks import StackService

# Managers that work through stacks.
NEEDS_STACKS = frozenset({"orchestrator", "migration"})


def build_stack_service(
    settings: Settings, sessions: sessionmaker[Session], services: Services
) -> StackService:
    def flavors(flavor_id: str) -> FlavorSpec:
        with transaction(sessions, readonly=True) as session:
            return catalog.flavor_spec(catalog.get_flavor(session, flavor_id=flavor_id))

    store = DbStackStore(sessions)
    # Stacks a previous engine left in progress are failed explicitly, never left hanging
    # (one engine per database: several task managers would need a lease per stack).
    fail_interrupted_stacks(store)
    return LocalStackService.build(
        services,
        flavors=flavors,
        store=store,
        poll_interval=settings.poll_interval_s,
    )
