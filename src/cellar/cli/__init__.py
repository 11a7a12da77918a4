"""The `cellar` command."""

from __future__ import annotations

import click

from cellar.cli import backups, client, clusters, demo, guest, server, stacks


@click.group()
def main() -> None:
    """cellar: databases as a service."""


for command in (
    *server.COMMANDS,
    *client.COMMANDS,
    *clusters.COMMANDS,
    *backups.COMMANDS,
    *stacks.COMMANDS,
    demo.demo,
    guest.guest_agent,
):
    main.add_command(command)
