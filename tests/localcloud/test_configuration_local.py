"""Configuration groups on the local cloud's real PostgreSQL through `cellar serve`: a
dynamic parameter is SHOWn at once, a restart-only one makes the instance
RESTART_REQUIRED until the `restart` action (then SHOWn), and detaching restores the
defaults."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
from test_local_serve import connect, create, local_env, wait_active

from serving import serving, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local cloud needs root")
__all__ = ["local_env"]  # the fixture, used by name


def setting(address: str, name: str) -> str:
    with connect(address) as conn:
        row = conn.execute(f"SHOW {name}").fetchone()
    assert row is not None
    return str(row[0])


def started(address: str) -> Any:
    with connect(address) as conn:
        row = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
    assert row is not None
    return row[0]


def wait_status(http: httpx.Client, iid: str, wanted: str) -> None:
    def done() -> bool:
        return bool(http.get(f"/instances/{iid}").json()["instance"]["status"] == wanted)

    wait_until(f"{iid} {wanted}", done, timeout=120, every=0.1)


def test_dynamic_at_once_restart_only_on_restart_detach_restores(
    local_env: dict[str, str],
) -> None:
    with serving(local_env) as served, served.client() as http:
        iid = create(http, "tuned")
        address = wait_active(http, iid)["ip"][0]
        default_connections = setting(address, "max_connections")
        assert setting(address, "work_mem") == "4MB"
        body = {"configuration": {"name": "tuning", "values": {
            "work_mem": "8MB", "statement_timeout": "5s", "max_connections": 42}}}  # fmt: skip
        r = http.post("/configurations", json=body)
        assert r.status_code == 200, r.text
        gid = r.json()["configuration"]["id"]

        r = http.put(f"/instances/{iid}", json={"instance": {"configuration": gid}})
        assert r.status_code == 202, r.text
        wait_status(http, iid, "RESTART_REQUIRED")
        assert setting(address, "work_mem") == "8MB"  # new sessions, at once
        assert setting(address, "statement_timeout") == "5s"
        assert setting(address, "max_connections") == default_connections
        before = started(address)

        r = http.post(f"/instances/{iid}/action", json={"restart": {}})
        assert r.status_code == 202, r.text
        wait_active(http, iid)
        assert started(address) > before  # really restarted
        assert setting(address, "max_connections") == "42"
        shown = http.get(f"/instances/{iid}/configuration").json()["instance"]["configuration"]
        assert shown["max_connections"] == "42" and shown["work_mem"] == "8MB"

        # A dynamic-only change through PATCH: in force at once, no restart asked.
        r = http.patch(f"/configurations/{gid}",
                       json={"configuration": {"values": {"work_mem": "16MB"}}})  # fmt: skip
        assert r.status_code == 200, r.text
        wait_until("work_mem 16MB", lambda: setting(address, "work_mem") == "16MB", timeout=60)
        assert http.get(f"/instances/{iid}").json()["instance"]["status"] == "ACTIVE"

        # Detach: the dynamic ones back at once, max_connections after the restart.
        r = http.put(f"/instances/{iid}", json={"instance": {}})
        assert r.status_code == 202, r.text
        wait_status(http, iid, "RESTART_REQUIRED")
        assert setting(address, "work_mem") == "4MB"
        assert setting(address, "statement_timeout") == "0"
        assert http.post(f"/instances/{iid}/action", json={"restart": {}}).status_code == 202
        wait_active(http, iid)
        assert setting(address, "max_connections") == default_connections
        assert http.delete(f"/configurations/{gid}").status_code == 202
        assert http.delete(f"/instances/{iid}").status_code == 202
        wait_until("deleted", lambda: http.get(f"/instances/{iid}").status_code == 404,
                   timeout=120)  # fmt: skip


def test_a_replication_group_shares_its_primarys_group(local_env: dict[str, str]) -> None:
    with serving(local_env) as served, served.client() as http:
        body = {"configuration": {"name": "g", "values": {"work_mem": "8MB"}}}
        gid = http.post("/configurations", json=body).json()["configuration"]["id"]
        primary = create(http, "p1", configuration=gid)
        primary_ip = wait_active(http, primary)["ip"][0]
        assert setting(primary_ip, "work_mem") == "8MB"
        r = http.post("/instances", json={"instance": {"name": "r1", "replica_of": primary}})
        assert r.status_code == 200, r.text
        replica = r.json()["instance"]["id"]
        replica_ip = wait_active(http, replica)["ip"][0]
        assert setting(replica_ip, "work_mem") == "8MB"
        assert http.get(f"/instances/{replica}").json()["instance"]["configuration"]["id"] == gid

        # A change of the group reaches every member at once.
        r = http.patch(f"/configurations/{gid}",
                       json={"configuration": {"values": {"work_mem": "16MB"}}})  # fmt: skip
        assert r.status_code == 200, r.text
        for ip in (primary_ip, replica_ip):
            wait_until("16MB", lambda ip=ip: setting(ip, "work_mem") == "16MB", timeout=60)
        # Detaching from one member detaches the group.
        assert http.put(f"/instances/{replica}", json={"instance": {}}).status_code == 202
        for ip in (primary_ip, replica_ip):
            wait_until("4MB", lambda ip=ip: setting(ip, "work_mem") == "4MB", timeout=60)
        for iid in (replica, primary):
            wait_status(http, iid, "ACTIVE")
        # The replica and its primary are one replication group: deleted as one.
        cluster = http.get(f"/instances/{primary}").json()["instance"]["cluster_id"]
        assert http.delete(f"/clusters/{cluster}").status_code == 202
        wait_until(
            "deleted",
            lambda: all(http.get(f"/instances/{i}").status_code == 404 for i in (primary, replica)),
            timeout=180,
        )
