"""Backups through `cellar serve` on the local cloud (pgBackRest): an instance archives
from its first start; a full then an incremental backup complete, checked, while the
instance shows BACKUP and then ACTIVE again; a backup an incremental depends on cannot
be deleted before it; deleting both leaves the audit clean."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
from test_local_serve import connect, create, delete_all, local_env, wait_active  # noqa: F401

from serving import serving, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local cloud needs root")


def backup(http: httpx.Client, iid: str, name: str, **extra: Any) -> dict[str, Any]:
    r = http.post("/backups", json={"backup": {"name": name, "instance": iid, **extra}})
    assert r.status_code == 202, r.text
    made = dict(r.json()["backup"])
    assert made["status"] == "NEW" and made["instance_id"] == iid
    return made


def completed(http: httpx.Client, bid: str) -> dict[str, Any]:
    def done() -> bool:
        found = http.get(f"/backups/{bid}").json()["backup"]
        assert found["status"] != "FAILED", found
        return bool(found["status"] == "COMPLETED")

    wait_until(f"backup {bid}", done, timeout=300, every=0.3)
    return dict(http.get(f"/backups/{bid}").json()["backup"])


def gone(http: httpx.Client, bid: str) -> bool:
    r = http.get(f"/backups/{bid}")
    if r.status_code == 404:
        return True
    assert r.json()["backup"]["status"] != "DELETE_FAILED", r.json()["backup"]["fail_reason"]
    return False


def test_full_and_incremental_backups_of_a_running_instance(
    local_env: dict[str, str],  # noqa: F811
) -> None:
    with serving(local_env) as served, served.client() as http:
        iid = create(http, "kept")
        inst = wait_active(http, iid)
        with connect(inst["ip"][0]) as conn:
            conn.execute("CREATE TABLE notes (id int PRIMARY KEY)")
            conn.execute("INSERT INTO notes SELECT generate_series(1, 1000)")

        full = backup(http, iid, "first", description="before the change")
        assert http.get(f"/instances/{iid}").json()["instance"]["status"] == "BACKUP"
        r = http.post(f"/instances/{iid}/action", json={"restart": {}})
        assert r.status_code == 422, r.text  # busy while the backup runs
        full = completed(http, full["id"])
        assert full["size"] and full["size"] > 0 and full["locationRef"]
        assert full["datastore"]["type"] == "postgresql" and full["parent_id"] is None
        assert wait_active(http, iid)["status"] == "ACTIVE"

        with connect(inst["ip"][0]) as conn:
            conn.execute("INSERT INTO notes SELECT generate_series(1001, 1100)")
        incr = completed(http, backup(http, iid, "second", incremental=1)["id"])
        assert incr["parent_id"] == full["id"]
        listed = http.get(f"/instances/{iid}/backups").json()["backups"]
        assert [b["id"] for b in listed] == [full["id"], incr["id"]]
        assert [
            b["id"] for b in http.get("/backups", params={"instance_id": iid}).json()["backups"]
        ] == [full["id"], incr["id"]]

        r = http.delete(f"/backups/{full['id']}")
        assert r.status_code == 409 and incr["id"] in r.text, r.text
        assert http.delete(f"/backups/{incr['id']}").status_code == 202
        wait_until("the incremental deleted", lambda: gone(http, incr["id"]), timeout=120)
        # The repository keeps a stanza's last full backup: another one first.
        r = http.delete(f"/backups/{full['id']}")
        assert r.status_code == 409 and "only full backup" in r.text, r.text
        second = completed(http, backup(http, iid, "third")["id"])
        assert second["parent_id"] is None
        assert http.delete(f"/backups/{full['id']}").status_code == 202
        wait_until("the first deleted", lambda: gone(http, full["id"]), timeout=120)
        assert [b["id"] for b in http.get(f"/instances/{iid}/backups").json()["backups"]] == [
            second["id"]
        ]
        delete_all(served, [iid])
