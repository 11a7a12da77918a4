"""`python -m cellar.guest --config-drive DIR`: the agent without the rest of the CLI.

The same agent as `cellar guest-agent`, for servers with little memory: `cellar`'s command
group imports the whole control plane (SQLAlchemy, FastAPI, ...) before it runs a command,
about twice the agent's own footprint.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cellar.guest.main import run_agent
from cellar.guest.protocol import AGENT_PORT

parser = argparse.ArgumentParser(prog="python -m cellar.guest", description=__doc__)
parser.add_argument("--config-drive", type=Path, required=True)
parser.add_argument("--port", type=int, default=AGENT_PORT)
parser.add_argument("--heartbeat-interval", type=float, default=5.0)
args = parser.parse_args()
run_agent(args.config_drive, port=args.port, heartbeat_interval_s=args.heartbeat_interval)
