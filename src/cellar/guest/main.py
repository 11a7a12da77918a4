"""`cellar guest-agent`: read the config drive, serve commands, report until SIGTERM.

Stopping the agent leaves the datastore running: only a command stops it (a server's
reboot kills everything in it anyway, and the next agent starts the datastore again).
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType

from cellar.guest.agent import Agent, ConfigDrive, preload_managers
from cellar.guest.http import AgentServer
from cellar.guest.protocol import AGENT_PORT

log = logging.getLogger("cellar.guest")

# How long to retry binding while the server's address is not configured yet.
BIND_WAIT_S = 30.0


def _bind(agent: Agent, address: str, port: int) -> AgentServer:
    deadline = time.monotonic() + BIND_WAIT_S
    while True:
        try:
            return AgentServer(agent, address, port)
        except OSError as exc:
            if exc.errno not in (errno.EADDRNOTAVAIL, errno.EADDRINUSE):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def run_agent(
    config_drive: Path,
    *,
    port: int = AGENT_PORT,
    heartbeat_interval_s: float = 5.0,
    check_interval_s: float = 1.0,
) -> None:
    logging.basicConfig(
        level=os.environ.get("CELLAR_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
    )
    try:
        drive = ConfigDrive.read(config_drive)
    except ValueError as exc:
        log.error("%s", exc)
        raise SystemExit(2) from None
    agent = Agent(
        drive, heartbeat_interval_s=heartbeat_interval_s, check_interval_s=check_interval_s
    )

    signals: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # Only a flag: the handler runs in the main thread, and setting an Event that this
        # thread may be waiting on (holding its lock) would deadlock. See below.
        signals.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = _bind(agent, drive.address, port)
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    threading.Thread(target=preload_managers, name="preload", daemon=True).start()
    log.info(
        "guest agent of instance %s serving on %s:%d, data on %s, control plane %s",
        drive.instance_id,
        drive.address,
        port,
        drive.data_dir,
        drive.control_plane_url,
    )
    runner = threading.Thread(target=agent.run, name="agent")
    runner.start()
    try:
        while not signals and runner.is_alive():
            runner.join(0.5)
        if signals:
            log.info("signal %d: stopping the agent (the datastore keeps running)", signals[0])
    finally:
        agent.stop()
        runner.join()
        server.shutdown()
        server.server_close()
