"""What the guest tests share: skip reasons, ports, clusters, instance rows."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest
import uvicorn
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from cellar.api.app import create_app
from cellar.config import Settings
from cellar.db import instances as repo
from cellar.db.engine import transaction
from cellar.db.tokens import issue_token
from cellar.domain.specs import DatabaseSpec, FlavorSpec, InstanceSpec, UserSpec
from cellar.guest.pgfiles import alive, postmaster_pid
from cellar.guest.postgresql import PG_ROOT

T = TypeVar("T")

PG_VERSION = "15"
POSTGRESQL_15_ID = "8f7c3b1e-0c5e-4c55-9d8e-5f0a3a3d1015"  # migration 0002's catalog


def real_postgres_reason() -> str | None:
    """Why the real datastore tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root: the agent runs PostgreSQL as the postgres account (runuser)"
    if not (PG_ROOT / PG_VERSION / "bin" / "initdb").is_file():
        return f"PostgreSQL {PG_VERSION} server binaries are not installed in {PG_ROOT}"
    if shutil.which("runuser") is None:
        return "runuser (util-linux) is missing"
    return None


needs_real_postgres = pytest.mark.skipif(
    real_postgres_reason() is not None, reason=str(real_postgres_reason())
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def stop_cluster(pgdata: Path) -> None:
    """Stop whatever postmaster runs on `pgdata`, at once."""
    pid = postmaster_pid(pgdata)
    if pid is not None and alive(pid):
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(PG_ROOT / PG_VERSION / "bin" / "pg_ctl"),
             "-D", str(pgdata), "-m", "immediate", "-w", "stop"],
            cwd="/", capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def instance_spec(
    instance_id: str, port: int, app_password: str, *, ram_mb: int = 256
) -> InstanceSpec:
    """A PostgreSQL 15 instance with database appdb and its user app."""
    return InstanceSpec(
        instance_id=instance_id,
        name="db1",
        project_id="p1",
        flavor=FlavorSpec(id="1", name="m1.tiny", ram_mb=ram_mb, vcpus=1),
        volume_size_gb=1,
        datastore="postgresql",
        datastore_version=PG_VERSION,
        image="debian-12",
        ports=(port,),
        databases=(DatabaseSpec("appdb"),),
        users=(UserSpec("app", app_password, ("appdb",)),),
    )


def new_instance(sessions: sessionmaker[Session], project: str = "p1") -> str:
    """An instance row as the API writes it (task BUILDING, service NEW)."""
    instance_id = str(uuid.uuid4())
    with transaction(sessions) as session:
        repo.create_instance(
            session,
            id=instance_id,
            tenant_id=project,
            name="db1",
            flavor_id="1",
            volume_size=1,
            datastore_version_id=POSTGRESQL_15_ID,
        )
    return instance_id


@contextmanager
def api_server(settings: Settings, engine: Engine) -> Iterator[str]:
    """The real API on 127.0.0.1:`settings.api_port` (uvicorn in a thread); yields its URL."""
    config = uvicorn.Config(
        create_app(settings, engine=engine),
        host="127.0.0.1",
        port=settings.api_port,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{settings.api_port}"
    finally:
        server.should_exit = True
        thread.join(10)


def issue(sessions: sessionmaker[Session], project: str = "p1") -> str:
    with transaction(sessions) as session:
        return issue_token(session, project_id=project)


def wait_until(
    probe: Callable[[], T], done: Callable[[T], bool], what: str, timeout_s: float = 20
) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout_s} s; last seen: {value!r}")
        time.sleep(0.05)
