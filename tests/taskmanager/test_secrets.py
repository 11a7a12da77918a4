"""Users' passwords of a create reach the guest, and nothing of them stays in the
control plane's database: the job holds them only sealed, and drops them once the guest
has its users; a crash before then loses neither the job nor the passwords."""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

from plane import ControlPlane
from sqlalchemy import select
from test_crash import Processes, crash_plane, wait_until  # noqa: F401 (a fixture)

from cellar.db.engine import make_session_factory, transaction
from cellar.db.models import Job
from cellar.drivers.fake.guest import prepared_users

PASSWORD = "Pw-of-app-4f1c9e"
USERS = {
    "databases": [{"name": "orders"}],
    "users": [{"name": "app", "password": PASSWORD, "databases": [{"name": "orders"}]}],
}


def _job_args(plane: ControlPlane, iid: str) -> dict[str, object]:
    with transaction(make_session_factory(plane.engine), readonly=True) as session:
        job = session.scalars(select(Job).where(Job.instance_id == iid)).one()
        return dict(job.args)


def _database_bytes(plane: ControlPlane) -> bytes:
    """Every byte of the control plane's SQLite database (its WAL included), freed pages
    too: a password ever written in the clear would still be found there."""
    path = Path(plane.engine.url.database or "")
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def _guest_got_the_password(plane: ControlPlane, iid: str) -> None:
    digest = hashlib.sha256(PASSWORD.encode()).hexdigest()
    assert prepared_users(plane.cloud, iid) == {"app": digest}


def test_the_password_reaches_the_guest_and_leaves_no_trace(plane: ControlPlane) -> None:
    iid = plane.create(**USERS)
    assert "sealed" in _job_args(plane, iid)
    plane.run()
    assert plane.show(iid)["status"] == "ACTIVE"
    _guest_got_the_password(plane, iid)
    assert "sealed" not in _job_args(plane, iid)
    assert ("secrets.forget", "succeeded") in [(e["step"], e["outcome"]) for e in plane.events(iid)]
    assert PASSWORD.encode() not in _database_bytes(plane)


def test_a_crash_before_the_guest_is_prepared_keeps_the_password(
    crash_plane: tuple[ControlPlane, Processes],  # noqa: F811 (the imported fixture)
) -> None:
    plane, procs = crash_plane
    first = procs.taskmanager("tm-a")
    iid = plane.create(**USERS)
    wait_until("the server create", lambda: plane.cloud.call_count("compute.create_server") >= 1)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert plane.cloud.call_count("guest.prepare") == 0
    assert "sealed" in _job_args(plane, iid)

    procs.taskmanager("tm-a")
    wait_until("ACTIVE", lambda: plane.show(iid)["status"] in ("ACTIVE", "ERROR"))
    assert plane.show(iid)["status"] == "ACTIVE", plane.show(iid)
    _guest_got_the_password(plane, iid)
    assert "sealed" not in _job_args(plane, iid)
    assert PASSWORD.encode() not in _database_bytes(plane)


def test_a_failed_create_keeps_no_sealed_password(plane: ControlPlane) -> None:
    plane.cloud.inject_fault("compute.create_server")
    iid = plane.create(**USERS)
    plane.run()
    assert plane.show(iid)["status"] == "ERROR"
    assert "sealed" not in _job_args(plane, iid)
    assert PASSWORD.encode() not in _database_bytes(plane)
