"""`cellar stack list|show|events|template`: the embedded engine's stacks, for operators.

Read straight from the control plane's database (where the engine keeps them), like
`cellar audit`: these commands need the state directory, not a running server.
"""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from cellar.cli.options import settings_from, settings_options
from cellar.db.engine import make_engine, make_session_factory
from cellar.db.stacks import DbStackStore
from cellar.domain.errors import NotFound
from cellar.orchestration.local.store import StackRecord
from cellar.orchestration.local.template import parse_template

console = Console()


def _store(cli: dict[str, Any]) -> DbStackStore:
    settings = settings_from(**cli)
    return DbStackStore(
        make_session_factory(make_engine(settings.database_url)),
        secret_key_path=settings.secret_key_path,
    )


def _stack(store: DbStackStore, stack_id: str) -> StackRecord:
    try:
        return store.load_stack(stack_id)
    except NotFound:
        raise click.ClickException(f"stack {stack_id} not found") from None


@click.group()
def stack() -> None:
    """Stacks of the embedded orchestration engine (instances of the orchestrator)."""


@stack.command("list")
@settings_options
def stack_list(**cli: Any) -> None:
    table = Table("id", "name", "status", "updated")
    for s in _store(cli).list_stacks():
        table.add_row(s.id, s.name, s.state, s.updated_at.isoformat(timespec="seconds"))
    console.print(table)


@stack.command("show")
@settings_options
@click.argument("stack_id")
def stack_show(stack_id: str, **cli: Any) -> None:
    """The stack's status, parameters and resources with their physical ids."""
    store = _store(cli)
    s = _stack(store, stack_id)
    console.print(f"[bold]{s.name}[/] {s.id}: {s.state} {s.status_reason}")
    shown = parse_template(s.template).shown_parameters(s.parameters)
    console.print(f"parameters: {json.dumps(shown, sort_keys=True)}")
    table = Table("resource", "type", "physical id", "status", "reason")
    for r in store.load_resources(stack_id):
        if r.current:
            table.add_row(r.name, r.type, r.physical_id, r.state, r.status_reason)
    console.print(table)


@stack.command("events")
@settings_options
@click.argument("stack_id")
def stack_events(stack_id: str, **cli: Any) -> None:
    store = _store(cli)
    _stack(store, stack_id)
    table = Table("time", "resource", "status", "reason")
    for e in store.load_events(stack_id):
        table.add_row(
            e.timestamp.isoformat(timespec="milliseconds"),
            e.resource_name,
            f"{e.action}_{e.status}",
            e.reason,
        )
    console.print(table)


@stack.command("template")
@settings_options
@click.argument("stack_id")
def stack_template(stack_id: str, **cli: Any) -> None:
    """The stack's HOT template, as JSON."""
    click.echo(json.dumps(_stack(_store(cli), stack_id).template, indent=2, sort_keys=True))


COMMANDS = (stack,)
