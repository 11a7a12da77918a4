"""Backups through `cellar serve` on the local cloud (pgBackRest): an instance archives
from its first start; a full then an incremental backup complete, checked, while the
instance shows BACKUP and then ACTIVE again; a backup an incremental depends on cannot
be deleted before it; deleting both leaves the audit clean."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest
from test_local_serve import (  # noqa: F401  (local_env: a fixture)
    connect,
    create,
    delete_all,
    local_env,
    show,
    wait_active,
)

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
        assert found["status"] != "FAILED", found.get("fail_reason")
        return bool(found["status"] == "COMPLETED")

    wait_until(f"backup {bid}", done, timeout=300, every=0.3)
    return dict(http.get(f"/backups/{bid}").json()["backup"])


def idle(http: httpx.Client, iid: str) -> bool:
    inst = show(http, iid)
    assert inst["status"] in ("BACKUP", "ACTIVE"), inst
    return bool(inst["status"] == "ACTIVE")


def gone(http: httpx.Client, bid: str) -> bool:
    r = http.get(f"/backups/{bid}")
    if r.status_code == 404:
        return True
    assert r.json()["backup"]["status"] != "DELETE_FAILED", r.json()["backup"]["fail_reason"]
    return False


# A backup is a guest task: the same under every resource manager.
@pytest.mark.parametrize("manager", ["native", "orchestrator", "migration"])
def test_full_and_incremental_backups_of_a_running_instance(
    local_env: dict[str, str],  # noqa: F811
    manager: str,
) -> None:
    env = dict(local_env, CELLAR_RESOURCE_MANAGER=manager)
    with serving(env) as served, served.client() as http:
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
        wait_until("the instance idle again", lambda: idle(http, iid), timeout=60)

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


def superuser(http: httpx.Client, iid: str, address: str) -> psycopg.Connection[Any]:
    r = http.post(f"/instances/{iid}/root")
    assert r.status_code == 200, r.text
    password = r.json()["user"]["password"]
    return psycopg.connect(
        host=address, port=5432, user="postgres", password=password, dbname="app",
        connect_timeout=5, autocommit=True,
    )  # fmt: skip


def rows(address: str) -> list[int]:
    with connect(address) as conn:
        return [int(r[0]) for r in conn.execute("SELECT id FROM notes ORDER BY id").fetchall()]


def test_restore_to_a_backup_and_to_points_in_time_even_after_the_source_is_gone(
    local_env: dict[str, str],  # noqa: F811
) -> None:
    with serving(local_env) as served, served.client() as http:
        iid = create(http, "source")
        address = wait_active(http, iid)["ip"][0]
        with connect(address) as conn:
            conn.execute("CREATE TABLE notes (id int PRIMARY KEY, at timestamptz)")
            conn.execute("INSERT INTO notes VALUES (1, clock_timestamp())")
        full = completed(http, backup(http, iid, "base")["id"])
        # Rows committed one by one; each commit's instant as the server saw it.
        committed: list[tuple[int, datetime]] = []
        with connect(address) as conn:
            for i in range(2, 12):
                conn.execute("INSERT INTO notes VALUES (%s, clock_timestamp())", (i,))
                at = conn.execute("SELECT clock_timestamp()").fetchone()
                assert at is not None
                committed.append((i, at[0]))
                time.sleep(0.15)  # spacing between commits, so an instant falls between
        with superuser(http, iid, address) as conn:
            conn.execute("SELECT pg_switch_wal()")  # archive the last commits now

        def instant_after(n: int) -> str:
            """An instant after row n's commit and before row n+1's."""
            (_, a), (_, b) = committed[n - 2], committed[n - 1]
            return (a + (b - a) / 2).astimezone(UTC).isoformat()

        last = committed[-1][1]
        wait_until(
            "the window to reach the last commit",
            lambda: (
                (until := show(http, iid).get("restorable_until")) is not None
                and datetime.fromisoformat(until) >= last.replace(microsecond=0)
            ),
            timeout=120,
        )
        shown = show(http, iid)
        assert datetime.fromisoformat(shown["restorable_from"]) <= datetime.fromisoformat(
            shown["restorable_until"]
        )

        # The end of the backup: row 1 only.
        at_backup = create(http, "at-backup", restorePoint={"backupRef": full["id"]}, **FRESH)
        # An instant from that backup: rows 1 to 5.
        point = {"backupRef": full["id"], "restoreTime": instant_after(5)}
        in_time = create(http, "in-time", restorePoint=point, **FRESH)
        assert rows(wait_active(http, at_backup)["ip"][0]) == [1]
        assert rows(wait_active(http, in_time)["ip"][0]) == [1, 2, 3, 4, 5]

        # Outside the window: a 400 that says the window.
        r = http.post("/instances", json={"instance": {
            "name": "too-early", "flavorRef": "1", "volume": {"size": 1},
            "restorePoint": {"instance": iid, "restoreTime": "2000-01-01T00:00:00Z"},
        }})  # fmt: skip
        assert r.status_code == 400 and "restorable window" in r.text, r.text

        # The source deleted, its archive restores to any instant of its window.
        delete_all(served, [iid])
        after = create(
            http, "after", restorePoint={"instance": iid, "restoreTime": instant_after(8)},
            **FRESH,
        )  # fmt: skip
        assert rows(wait_active(http, after)["ip"][0]) == list(range(1, 9))
        delete_all(served, [at_backup, in_time, after])


# A restored instance has its source's users and databases: none of its own.
FRESH: dict[str, Any] = {"databases": [], "users": []}
