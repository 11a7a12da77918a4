"""The agent's HTTP API and heartbeats in process, before any datastore exists (no root)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from cellar.config import Settings
from cellar.db import instances as repo
from cellar.db.engine import transaction
from cellar.drivers.local.guest import LocalGuestDriver
from cellar.guest.agent import Agent, ConfigDrive
from cellar.guest.http import AgentServer
from cellar.guest.protocol import SECRET_HEADER
from guest.helpers import api_server, new_instance, wait_until


@pytest.fixture
def agent_url(
    settings: Settings, engine: Engine, sessions: sessionmaker[Session], tmp_path: Path
) -> Iterator[tuple[str, str, str]]:
    """An agent reporting to the real API; yields (its URL, its secret, its instance id)."""
    instance_id = new_instance(sessions)
    secret = LocalGuestDriver(settings).secret(instance_id)
    with api_server(settings, engine) as api:
        drive = ConfigDrive(instance_id, api, secret, "s-1", "127.0.0.1", tmp_path / "data")
        agent = Agent(drive, heartbeat_interval_s=0.2, check_interval_s=0.1)
        server = AgentServer(agent, "127.0.0.1", 0)
        threads = [
            threading.Thread(target=server.serve_forever, daemon=True),
            threading.Thread(target=agent.run, daemon=True),
        ]
        for thread in threads:
            thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}", secret, instance_id
        finally:
            agent.stop()
            server.shutdown()
            server.server_close()
            for thread in threads:
                thread.join(5)


def test_an_unprepared_agent_answers_and_reports_new(
    agent_url: tuple[str, str, str], sessions: sessionmaker[Session]
) -> None:
    url, secret, instance_id = agent_url
    with httpx.Client(base_url=url, headers={SECRET_HEADER: secret}) as agent:
        assert agent.get("/status").json() == {"service_status": "NEW"}
        assert agent.post("/stop").status_code == 409
        assert agent.post("/resize_fs").status_code == 409
        assert agent.get("/root-password").status_code == 404
        assert agent.get("/nothing").status_code == 404
        bad = agent.post("/prepare", json={"datastore": "postgresql", "version": "15"})
        assert bad.status_code == 400 and "ram_mb" in bad.json()["error"]
        body = {"datastore": "mongodb", "version": "7", "ram_mb": 512, "port": 27017}
        assert agent.post("/prepare", json=body).status_code == 400
        assert agent.post("/prepare", content=b"{nope").status_code == 400
    assert httpx.get(f"{url}/status").status_code == 401
    assert httpx.get(f"{url}/status", headers={SECRET_HEADER: secret.upper()}).status_code == 401

    def heartbeat() -> tuple[str, float | None]:
        with transaction(sessions) as session:
            row = repo.get_instance(session, instance_id=instance_id)
        return row.service_status, row.guest_heartbeat_sent

    first = wait_until(heartbeat, lambda h: h[1] is not None, "a heartbeat")
    assert first[0] == "NEW"
    wait_until(heartbeat, lambda h: (h[1] or 0) > (first[1] or 0), "a later heartbeat")


def test_an_agent_without_its_user_data_says_so(tmp_path: Path) -> None:
    (tmp_path / "user_data.json").write_text("{}")
    (tmp_path / "meta_data.json").write_text(json.dumps({"address": "127.0.0.1"}))
    done = subprocess.run(
        [sys.executable, "-m", "cellar.guest", "--config-drive", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "lacks instance_id, control_plane_url, secret" in done.stderr
    assert "lacks data_dir" not in done.stderr  # user data first
