"""A whole control plane in one process: the API (TestClient), a task manager run on
demand, and the fake cloud on a SQLite file of its own."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from cellar.api.app import create_app
from cellar.config import Settings, settings_from_env
from cellar.db.engine import make_engine, make_session_factory, transaction
from cellar.db.migrate import upgrade
from cellar.db.tokens import issue_token
from cellar.drivers.fake import FakeCloud
from cellar.drivers.registry import Services, build_services
from cellar.taskmanager.audit import Orphan, find_orphans
from cellar.taskmanager.runner import TaskManager


def fast_settings(state_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        state_dir=state_dir,
        backend="fake",
        fake_latency_s=0.0,
        poll_interval_s=0.005,
        retry_delay_s=0.005,
        server_timeout_s=10.0,
        volume_timeout_s=10.0,
        guest_timeout_s=10.0,
    )
    values.update(overrides)
    return settings_from_env(env={}, **values)


@dataclass
class ControlPlane:
    settings: Settings
    engine: Engine
    services: Services
    cloud: FakeCloud
    tm: TaskManager
    http: TestClient
    project: str = "p1"

    def url(self, path: str) -> str:
        return f"/v1.0/{self.project}{path}"

    def create(self, name: str = "db1", **extra: Any) -> str:
        body = {"instance": {"name": name, "flavorRef": "1", "volume": {"size": 1}, **extra}}
        r = self.http.post(self.url("/instances"), json=body)
        assert r.status_code == 200, r.text
        return str(r.json()["instance"]["id"])

    def show(self, iid: str) -> dict[str, Any]:
        r = self.http.get(self.url(f"/instances/{iid}"))
        assert r.status_code == 200, r.text
        return dict(r.json()["instance"])

    def action(self, iid: str, body: dict[str, Any]) -> None:
        r = self.http.post(self.url(f"/instances/{iid}/action"), json=body)
        assert r.status_code == 202, r.text

    def delete(self, iid: str) -> None:
        r = self.http.delete(self.url(f"/instances/{iid}"))
        assert r.status_code == 202, r.text

    def gone(self, iid: str) -> bool:
        return self.http.get(self.url(f"/instances/{iid}")).status_code == 404

    def events(self, iid: str) -> list[dict[str, Any]]:
        return list(self.http.get(self.url(f"/instances/{iid}/events")).json()["events"])

    def run(self) -> None:
        self.tm.run_until_idle(timeout=60)

    def orphans(self) -> list[Orphan]:
        return find_orphans(self.services, make_session_factory(self.engine))

    def resources(self) -> dict[str, int]:
        s = self.services
        return {
            "servers": len(s.compute.list_servers()),
            "volumes": len(s.volume.list_volumes()),
            "security_groups": len(s.network.list_security_groups()),
            "dns_records": len(s.dns.list_records()),
        }


def make_plane(tmp_path: Path, **overrides: Any) -> ControlPlane:
    settings = fast_settings(tmp_path, **overrides)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    with transaction(make_session_factory(engine)) as s:
        token = issue_token(s, project_id="p1")
    services = build_services(settings)
    cloud = FakeCloud(settings.fake_cloud_path)
    tm = TaskManager(settings, engine=engine, services=services, name="tm-test")
    http = TestClient(create_app(settings, engine=engine), headers={"X-Auth-Token": token})
    return ControlPlane(settings, engine, services, cloud, tm, http)


@contextlib.contextmanager
def running(plane: ControlPlane) -> Iterator[ControlPlane]:
    """`plane`, its task manager's workers stopped and its database closed after."""
    try:
        yield plane
    finally:
        plane.tm.pool.shutdown(wait=True)
        plane.engine.dispose()
