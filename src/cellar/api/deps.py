"""What every route receives: the application's state, built once by `create_app`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from cellar.api.views.common import Linker
from cellar.config import Settings
from cellar.drivers.backup.base import BackupDriver
from cellar.drivers.guest.base import GuestDriver
from cellar.resource_managers.base import ResourceManager


@dataclass(frozen=True)
class ApiState:
    settings: Settings
    sessions: sessionmaker[Session]
    manager: type[ResourceManager]
    # The provisioning engine new instances get (`instances.provisioning_engine`).
    provisioning_engine: str
    # The guest driver, built on first use (only `enable root` talks to guests).
    guest: Callable[[], GuestDriver]
    # The backup repository, built on first use (None: the backend has none).
    backups: Callable[[], BackupDriver | None] = lambda: None


def get_state(request: Request) -> ApiState:
    state = request.app.state.cellar
    assert isinstance(state, ApiState)
    return state


def get_linker(request: Request) -> Linker:
    return Linker(str(request.base_url))


State = Annotated[ApiState, Depends(get_state)]
Links = Annotated[Linker, Depends(get_linker)]
