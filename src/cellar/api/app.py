"""The application factory. Nothing is built at import time.

`create_app` assumes the database schema is migrated (`cellar.db.migrate.upgrade`);
it neither creates tables nor runs migrations.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import Engine

from cellar.api.deps import ApiState
from cellar.api.errors import install_error_handlers
from cellar.api.routes import ROUTERS, guest, stacks, versions
from cellar.config import Settings
from cellar.db.engine import make_engine, make_session_factory
from cellar.domain.errors import BadRequest
from cellar.drivers.registry import build_backups, build_guest
from cellar.resource_managers import manager_class
from cellar.resource_managers.base import ResourceManager

# The provisioning engine of new instances, by manager (DESIGN.md: `migration` sends
# new instances to the orchestrator). A manager not listed provisions under its name.
NEW_INSTANCE_ENGINE = {
    "native": "native",
    "orchestrator": "orchestrator",
    "migration": "orchestrator",
}


def _manager(name: str) -> type[ResourceManager]:
    try:
        return manager_class(name)
    except BadRequest as exc:
        raise ValueError(exc.message) from None


def create_app(settings: Settings, *, engine: Engine | None = None) -> FastAPI:
    """The REST API over `engine` (or one made from `settings.database_url`)."""
    manager = _manager(settings.resource_manager)
    owned = engine is None
    bound = make_engine(settings.database_url) if engine is None else engine

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            bound.dispose()

    app = FastAPI(title="cellar", version="1.0", lifespan=lifespan)
    app.state.cellar = ApiState(
        settings=settings,
        sessions=make_session_factory(bound),
        manager=manager,
        provisioning_engine=NEW_INSTANCE_ENGINE.get(
            settings.resource_manager, settings.resource_manager
        ),
        guest=functools.cache(functools.partial(build_guest, settings)),
        backups=functools.cache(functools.partial(build_backups, settings)),
    )
    install_error_handlers(app)
    app.include_router(versions.router)
    app.include_router(guest.router)
    app.include_router(stacks.router)
    for router in ROUTERS:
        app.include_router(router, prefix="/v1.0/{tenant_id}")
    return app
