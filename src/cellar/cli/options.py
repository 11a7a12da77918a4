"""Options shared by the server-side commands: each maps onto a `Settings` field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from cellar.config import BACKENDS, Settings, settings_from_env

F = TypeVar("F", bound=Callable[..., Any])


def settings_options(fn: F) -> F:
    options = [
        click.option(
            "--state-dir",
            type=click.Path(path_type=Path),
            default=None,
            help="Where cellar keeps its state (env CELLAR_STATE_DIR).",
        ),
        click.option(
            "--backend",
            type=click.Choice(BACKENDS),
            default=None,
            help="The cloud to drive (env CELLAR_BACKEND).",
        ),
        click.option(
            "--resource-manager",
            default=None,
            help="native | orchestrator | migration (env CELLAR_RESOURCE_MANAGER).",
        ),
        click.option("--database-url", default=None, help="env CELLAR_DATABASE_URL."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def settings_from(**cli: Any) -> Settings:
    keys = ("state_dir", "backend", "resource_manager", "database_url", "api_port", "api_host")
    try:
        return settings_from_env(**{k: cli.get(k) for k in keys})
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
