"""The guest agent as a process on 127.0.0.1, driven by `LocalGuestDriver`, reporting to
the real API (uvicorn on a free port) over HTTP."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from cellar.config import Settings
from cellar.db import instances as repo
from cellar.db.engine import transaction
from cellar.db.models import Instance
from cellar.domain.specs import InstanceSpec
from cellar.domain.status import InstanceTask, ServerStatus, ServiceStatus
from cellar.drivers.guest.base import GuestError, GuestStatus
from cellar.drivers.local.guest import LocalGuestDriver
from cellar.guest.pgfiles import cluster_processes
from cellar.guest.protocol import SECRET_HEADER
from cellar.localcloud.state import CloudState, Resource
from guest.helpers import (
    api_server,
    free_port,
    instance_spec,
    issue,
    needs_real_postgres,
    new_instance,
    wait_until,
)

pytestmark = needs_real_postgres

RUNNING, SHUTDOWN = ServiceStatus.RUNNING, ServiceStatus.SHUTDOWN
APP_PASSWORD = "app-secret-1"


@dataclass
class Agent:
    """One server's agent: its config drive, its port and its process."""

    drive: Path
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cellar", "guest-agent", "--config-drive", str(self.drive),
                 "--port", str(self.port), "--heartbeat-interval", "0.3"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@dataclass
class Server:
    settings: Settings
    sessions: sessionmaker[Session]
    api: str
    instance_id: str
    server_id: str
    pg_port: int
    data_dir: Path
    agent: Agent
    driver: LocalGuestDriver

    def spec(self) -> InstanceSpec:
        return instance_spec(self.instance_id, self.pg_port, APP_PASSWORD)

    def wait_service(self, status: ServiceStatus) -> None:
        wait_until(
            lambda: self.driver.status(self.instance_id).service, lambda s: s is status, str(status)
        )

    def row(self) -> Instance:
        with transaction(self.sessions) as session:
            return repo.get_instance(session, instance_id=self.instance_id)

    def connect(
        self, user: str = "app", password: str = APP_PASSWORD, dbname: str = "appdb"
    ) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host="127.0.0.1", port=self.pg_port, user=user, password=password, dbname=dbname,
            autocommit=True, connect_timeout=5,
        )  # fmt: skip


@pytest.fixture
def server(
    settings: Settings,
    engine: Engine,
    sessions: sessionmaker[Session],
    data_dir: Path,
    tmp_path: Path,
) -> Iterator[Server]:
    """An instance row, a server in the local cloud's state at 127.0.0.1 with a config
    drive, its agent running, and the API the agent reports to."""
    settings = settings.with_(guest_heartbeat_timeout_s=1.5)
    instance_id, server_id = new_instance(sessions), str(uuid.uuid4())
    CloudState(settings.local_root / "state.sqlite").put(
        Resource(server_id, "server", f"cellar-{instance_id}", None, {"address": "127.0.0.1"})
    )
    agent_port = free_port()
    driver = LocalGuestDriver(settings, agent_port=agent_port, boot_wait_s=20)
    with api_server(settings, engine) as api:
        drive = tmp_path / "drive"
        drive.mkdir()
        user_data = driver.user_data(instance_id)
        assert user_data["control_plane_url"] == f"http://10.251.0.1:{settings.api_port}"
        (drive / "user_data.json").write_text(json.dumps({**user_data, "control_plane_url": api}))
        meta = {
            "server_id": server_id,
            "name": f"cellar-{instance_id}",
            "address": "127.0.0.1",
            "gateway": "127.0.0.1",
            "data_dir": str(data_dir),
            "flavor": {"id": "1", "name": "m1.tiny", "ram_mb": 256, "vcpus": 1},
            "metadata": {},
        }
        (drive / "meta_data.json").write_text(json.dumps(meta))
        agent = Agent(drive, agent_port, tmp_path / "agent.log")
        agent.start()
        try:
            yield Server(
                settings,
                sessions,
                api,
                instance_id,
                server_id,
                free_port(),
                data_dir,
                agent,
                driver,
            )
        finally:
            agent.kill()
            if agent.log.exists():  # nothing secret may ever reach the agent's log
                text = agent.log.read_text()
                assert APP_PASSWORD not in text and user_data["secret"] not in text


def test_the_agent_prepares_serves_commands_and_reports(server: Server) -> None:
    iid, driver = server.instance_id, server.driver
    assert driver.status(iid) == GuestStatus(ServiceStatus.NEW, None)
    with pytest.raises(GuestError, match=iid):
        driver.stop_db(iid)  # nothing prepared yet

    # A failed prepare is FAILED, and may be tried again.
    missing_version = dataclasses.replace(server.spec(), datastore_version="7")
    driver.prepare(iid, server_id=server.server_id, spec=missing_version)
    server.wait_service(ServiceStatus.FAILED)
    wait_until(server.row, lambda r: r.service_status == "FAILED", "a FAILED heartbeat")

    driver.prepare(iid, server_id=server.server_id, spec=server.spec())
    server.wait_service(RUNNING)
    assert driver.status(iid).age_s == 0.0
    row = wait_until(server.row, lambda r: r.service_status == "RUNNING", "a RUNNING heartbeat")
    assert row.guest_heartbeat_sent is not None and row.task_status == "BUILDING"

    with server.connect() as conn:
        conn.execute("CREATE TABLE notes (id int, body text)")
        conn.execute("INSERT INTO notes VALUES (1, 'kept')")
    root_password = driver.root_password(iid)
    assert root_password is not None
    with server.connect("postgres", root_password, "postgres") as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
    assert driver.root_password(iid) is None  # handed out once

    driver.stop_db(iid)
    assert driver.status(iid).service is SHUTDOWN
    wait_until(server.row, lambda r: r.service_status == "SHUTDOWN", "a SHUTDOWN heartbeat")
    driver.start_db(iid)
    assert driver.status(iid).service is RUNNING
    with server.connect() as conn:
        started = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
    driver.restart(iid)
    assert driver.status(iid).service is RUNNING
    with server.connect() as conn:
        assert conn.execute("SELECT body FROM notes").fetchall() == [("kept",)]
        restarted = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
    assert started is not None and restarted is not None and restarted[0] > started[0]
    wait_until(server.row, lambda r: r.service_status == "RUNNING", "a RUNNING heartbeat")

    driver.resize_fs(iid)
    fs = driver.filesystem(iid)
    assert fs["size_bytes"] > fs["free_bytes"] > 0
    driver.prepare(iid, server_id=server.server_id, spec=server.spec())  # a repeat: no-op
    assert driver.status(iid).service is RUNNING

    agent = f"http://127.0.0.1:{server.agent.port}"
    assert httpx.get(f"{agent}/status").status_code == 401
    assert httpx.post(f"{agent}/stop", headers={SECRET_HEADER: "0" * 64}).status_code == 401
    assert driver.status(iid).service is RUNNING

    driver.forget(iid)
    assert driver.status(iid) == GuestStatus(ServiceStatus.NEW, None)


def test_a_rebooted_server_starts_its_datastore_and_silence_shows(server: Server) -> None:
    iid, driver = server.instance_id, server.driver
    driver.prepare(iid, server_id=server.server_id, spec=server.spec())
    server.wait_service(RUNNING)
    with server.connect() as conn:
        conn.execute("CREATE TABLE notes AS SELECT 7 AS x")
    with transaction(server.sessions) as session:
        repo.change_task(
            session, instance_id=iid, target=InstanceTask.NONE,
            server_status=ServerStatus.ACTIVE.value,
        )  # fmt: skip
    token = issue(server.sessions)
    url = f"{server.api}/v1.0/p1/instances/{iid}"

    def shown() -> str:
        """The datastore's state as the user sees it (Trove's `operating_status`: the
        instance's `status` stays ACTIVE, from its task and its server)."""
        response = httpx.get(url, headers={"X-Auth-Token": token})
        assert response.status_code == 200, response.text
        assert response.json()["instance"]["status"] == "ACTIVE", response.text
        return str(response.json()["instance"]["operating_status"])

    wait_until(shown, lambda s: s == "HEALTHY", "HEALTHY while the guest reports")

    # The server reboots: every process in it dies at once.
    server.agent.kill()
    for pid in cluster_processes(server.data_dir / "pgdata"):
        os.kill(pid, signal.SIGKILL)
    status = driver.status(iid)
    assert status.service is SHUTDOWN and status.age_s is not None  # unreachable
    wait_until(shown, lambda s: s == "ERROR", "ERROR once the guest is silent", timeout_s=10)

    server.agent.start()  # the same config drive: the agent finds the datastore and starts it
    server.wait_service(RUNNING)
    with server.connect() as conn:
        assert conn.execute("SELECT x FROM notes").fetchall() == [(7,)]
    wait_until(shown, lambda s: s == "HEALTHY", "HEALTHY once the guest reports again")
