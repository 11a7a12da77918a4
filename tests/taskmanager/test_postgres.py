"""One full API flow with the control plane's database on a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import pytest
from plane import make_plane


@pytest.mark.postgres
def test_full_flow_on_postgresql(tmp_path: Path, fresh_postgres_url: str) -> None:
    plane = make_plane(tmp_path, database_url=fresh_postgres_url)
    try:
        assert plane.engine.dialect.name == "postgresql"
        iid = plane.create(access={"allowed_cidrs": ["10.2.0.0/16"]})
        plane.run()
        assert plane.show(iid)["status"] == "ACTIVE"

        plane.action(iid, {"resize": {"flavorRef": "2"}})
        plane.run()
        plane.action(iid, {"resize": {"volume": {"size": 2}}})
        plane.run()
        inst = plane.show(iid)
        assert (inst["status"], inst["flavor"]["id"], inst["volume"]["size"]) == ("ACTIVE", "2", 2)

        plane.cloud.inject_fault("compute.reboot_server")
        plane.action(iid, {"reboot": {}})
        plane.run()
        inst = plane.show(iid)
        assert inst["status"] == "ACTIVE" and "reboot" in inst["fault"]["message"].lower()

        plane.delete(iid)
        plane.run()
        assert plane.gone(iid)
        assert plane.orphans() == []
    finally:
        plane.tm.pool.shutdown(wait=True)
        plane.engine.dispose()
