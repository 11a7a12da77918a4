"""The quota check of each request that adds to what a project holds: what it adds
(Trove's deltas) and the defaults from the settings."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cellar.api.deps import ApiState
from cellar.config import Settings
from cellar.db import quotas
from cellar.db.models import Flavor
from cellar.domain.quotas import BACKUPS, INSTANCES, RAM, VOLUMES


def defaults_of(settings: Settings) -> dict[str, int]:
    return {
        INSTANCES: settings.quota_instances,
        RAM: settings.quota_ram_mb,
        VOLUMES: settings.quota_volumes_gb,
        BACKUPS: settings.quota_backups,
    }


def quota_defaults(state: ApiState) -> dict[str, int]:
    return defaults_of(state.settings)


def check_instances(
    session: Session,
    *,
    project_id: str,
    settings: Settings,
    flavors: list[Flavor],
    volume_gb: int,
) -> None:
    """New instances: one each, their flavors' RAM, `volume_gb` in all."""
    quotas.check(
        session,
        project_id=project_id,
        defaults=defaults_of(settings),
        instances=len(flavors),
        ram=sum(f.ram_mb for f in flavors),
        volumes=volume_gb,
    )


def check_growth(
    session: Session, *, project_id: str, settings: Settings, ram: int = 0, volumes: int = 0
) -> None:
    """A resize: the RAM or gigabytes it adds."""
    quotas.check(
        session, project_id=project_id, defaults=defaults_of(settings), ram=ram, volumes=volumes
    )


def check_backup(session: Session, *, project_id: str, settings: Settings) -> None:
    quotas.check(session, project_id=project_id, defaults=defaults_of(settings), backups=1)
