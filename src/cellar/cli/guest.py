"""`cellar guest-agent`: the agent inside each server (started by the cloud, not by hand)."""

from __future__ import annotations

from pathlib import Path

import click

from cellar.guest.protocol import AGENT_PORT


@click.command("guest-agent")
@click.option(
    "--config-drive",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="The directory holding user_data.json and meta_data.json.",
)
@click.option("--port", type=int, default=AGENT_PORT, show_default=True, help="Port to serve on.")
@click.option(
    "--heartbeat-interval",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds between heartbeats (a status change is reported at once).",
)
def guest_agent(config_drive: Path, port: int, heartbeat_interval: float) -> None:
    """Run the guest agent: serve the control plane's commands and report heartbeats."""
    from cellar.guest.main import run_agent

    run_agent(config_drive, port=port, heartbeat_interval_s=heartbeat_interval)
