"""The guest endpoint of the API, the per-instance secret, and what a silent guest shows.

In process (TestClient): no root, no PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import stat
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session, sessionmaker

from cellar.api.app import create_app
from cellar.config import Settings
from cellar.db import instances as repo
from cellar.db.engine import transaction
from cellar.db.models import Instance
from cellar.domain.status import InstanceTask
from cellar.drivers.local.guest import LocalGuestDriver
from cellar.guest.protocol import KEY_FILE, SECRET_HEADER
from guest.helpers import issue, new_instance


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine=engine)) as client:
        yield client


@pytest.fixture
def driver(settings: Settings) -> LocalGuestDriver:
    return LocalGuestDriver(settings)


def beat(
    client: TestClient,
    instance_id: str,
    secret: str | None,
    status: str = "RUNNING",
    sent: float = 100.0,
) -> tuple[int, dict[str, object]]:
    headers = {SECRET_HEADER: secret} if secret is not None else {}
    response = client.post(
        f"/guest/v1/instances/{instance_id}/heartbeat",
        json={"service_status": status, "sent": sent},
        headers=headers,
    )
    return response.status_code, response.json()


def row(sessions: sessionmaker[Session], instance_id: str) -> Instance:
    with transaction(sessions) as session:
        return repo.get_instance(session, instance_id=instance_id, deleted=True)


def test_each_instance_has_its_own_secret_from_a_private_key(settings: Settings) -> None:
    first, second = LocalGuestDriver(settings), LocalGuestDriver(settings)
    data = first.user_data("i-1")
    key_file = settings.state_dir / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(key_file.read_bytes()) == 32
    expected = hmac.new(key_file.read_bytes(), b"i-1", hashlib.sha256).hexdigest()
    assert data == {
        "instance_id": "i-1",
        "control_plane_url": f"http://10.251.0.1:{settings.api_port}",
        "secret": expected,
    }
    assert second.user_data("i-1") == data  # the key is made once and kept
    assert second.user_data("i-2")["secret"] != data["secret"]


def test_a_heartbeat_needs_the_instance_secret(
    client: TestClient, driver: LocalGuestDriver, sessions: sessionmaker[Session]
) -> None:
    iid, other = new_instance(sessions), new_instance(sessions)
    assert beat(client, iid, "anything")[0] == 401  # no key yet: no secret is valid
    secret = driver.secret(iid)
    assert beat(client, iid, None)[0] == 401
    assert beat(client, iid, driver.secret(other))[0] == 401
    code, body = beat(client, iid, secret[:-1] + ("0" if secret[-1] != "0" else "1"))
    assert code == 401 and body["unauthorized"]["code"] == 401  # type: ignore[index]
    assert row(sessions, iid).service_status == "NEW"
    assert beat(client, iid, secret) == (200, {"accepted": True})


def test_heartbeats_set_the_service_status_and_older_ones_are_dropped(
    client: TestClient, driver: LocalGuestDriver, sessions: sessionmaker[Session]
) -> None:
    iid = new_instance(sessions)
    secret = driver.secret(iid)
    assert beat(client, iid, secret, "BUILDING", sent=100.0) == (200, {"accepted": True})
    assert beat(client, iid, secret, "RUNNING", sent=101.0) == (200, {"accepted": True})
    first = row(sessions, iid)
    assert (first.service_status, first.guest_heartbeat_sent) == ("RUNNING", 101.0)
    assert first.task_status == "BUILDING"  # never touched by a heartbeat
    assert first.service_updated_at is not None

    assert beat(client, iid, secret, "BUILDING", sent=100.5) == (200, {"accepted": False})
    assert beat(client, iid, secret, "SHUTDOWN", sent=101.0) == (200, {"accepted": False})
    assert row(sessions, iid).service_status == "RUNNING"


def test_bad_heartbeats_are_refused(
    client: TestClient, driver: LocalGuestDriver, sessions: sessionmaker[Session]
) -> None:
    iid = new_instance(sessions)
    code, body = beat(client, iid, driver.secret(iid), "SLEEPY")
    assert code == 400 and "service_status" in str(body)
    missing = "00000000-0000-0000-0000-000000000000"
    assert beat(client, missing, driver.secret(missing))[0] == 404
    response = client.post(
        f"/guest/v1/instances/{iid}/heartbeat",
        json={"service_status": "RUNNING"},
        headers={SECRET_HEADER: driver.secret(iid)},
    )
    assert response.status_code == 400 and "sent" in response.text


def test_a_deleted_instance_takes_no_heartbeat(
    client: TestClient, driver: LocalGuestDriver, sessions: sessionmaker[Session]
) -> None:
    iid = new_instance(sessions)
    with transaction(sessions) as session:
        repo.change_task(session, instance_id=iid, target=InstanceTask.DELETING)
        repo.change_task(
            session, instance_id=iid, target=InstanceTask.DELETED, deleted=True,
            service_status="DELETED",
        )  # fmt: skip
    assert beat(client, iid, driver.secret(iid)) == (200, {"accepted": False})
    assert row(sessions, iid).service_status == "DELETED"


def _age(sessions: sessionmaker[Session], instance_id: str, seconds: float) -> None:
    """Make the instance's last service update `seconds` old."""
    with transaction(sessions) as session:
        session.execute(
            update(Instance)
            .where(Instance.id == instance_id)
            .values(service_updated_at=repo.utcnow() - timedelta(seconds=seconds))
        )


def test_a_silent_guest_shows_as_error_but_a_guest_that_never_reported_does_not(
    client: TestClient, driver: LocalGuestDriver, sessions: sessionmaker[Session]
) -> None:
    """As Trove since Wallaby: the status follows the task and the server; the datastore's
    state, a silent guest's included, is the `operating_status`."""
    reporting, agentless = new_instance(sessions), new_instance(sessions)
    headers = {"X-Auth-Token": issue(sessions)}

    def shown(instance_id: str) -> tuple[str, str]:
        response = client.get(f"/v1.0/p1/instances/{instance_id}", headers=headers)
        assert response.status_code == 200, response.text
        view = response.json()["instance"]
        return str(view["status"]), str(view["operating_status"])

    assert beat(client, reporting, driver.secret(reporting))[0] == 200
    with transaction(sessions) as session:
        for iid in (reporting, agentless):
            repo.change_task(session, instance_id=iid, target=InstanceTask.NONE)
            repo.update_instance(session, instance_id=iid, server_status="ACTIVE")
        repo.update_instance(session, instance_id=agentless, service_status="RUNNING")
    _age(sessions, agentless, 3600)
    assert shown(reporting) == shown(agentless) == ("ACTIVE", "HEALTHY")

    _age(sessions, reporting, 61)  # the default timeout is 60 s
    assert shown(reporting) == ("ACTIVE", "ERROR")
    assert shown(agentless) == ("ACTIVE", "HEALTHY")  # the fake backend's have no agent
    listed = client.get("/v1.0/p1/instances", headers=headers).json()["instances"]
    assert {i["id"]: i["operating_status"] for i in listed} == {
        reporting: "ERROR",
        agentless: "HEALTHY",
    }

    with transaction(sessions) as session:  # while the control plane works on it, its task shows
        repo.change_task(session, instance_id=reporting, target=InstanceTask.RESIZING)
    assert shown(reporting) == ("RESIZE", "")
    with transaction(sessions) as session:
        repo.change_task(session, instance_id=reporting, target=InstanceTask.NONE)
    assert beat(client, reporting, driver.secret(reporting), sent=200.0)[0] == 200
    assert shown(reporting) == ("ACTIVE", "HEALTHY")  # it reports again
