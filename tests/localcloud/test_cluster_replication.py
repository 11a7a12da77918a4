"""A PostgreSQL cluster of two on the local cloud through `cellar serve --backend local`:
the replica, of another flavor and volume size, streams from the primary over the
cloud's network."""

from __future__ import annotations

import os
import time
from typing import Any

import httpx
import psycopg
import pytest
from test_local_serve import local_env  # noqa: F401  (a fixture)

from serving import serving, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local cloud needs root")


def show(http: httpx.Client, cid: str) -> dict[str, Any]:
    r = http.get(f"/clusters/{cid}")
    assert r.status_code == 200, r.text
    return dict(r.json()["cluster"])


def connect(address: str, password: str) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=address, port=5432, user="postgres", password=password, dbname="postgres",
        connect_timeout=5, autocommit=True,
    )  # fmt: skip


def count(address: str, password: str) -> int | None:
    """The rows in table notes, None while the table (or the password) has not reached
    `address`."""
    try:
        with connect(address, password) as conn:
            row = conn.execute("SELECT count(*) FROM notes").fetchone()
    except (psycopg.errors.UndefinedTable, psycopg.OperationalError):
        return None
    return None if row is None else int(row[0])


def test_a_cluster_of_two_replicates(local_env: dict[str, str]) -> None:  # noqa: F811
    with serving(local_env) as served, served.client() as http:
        body = {
            "cluster": {
                "name": "pg",
                "instances": [
                    {"flavorRef": "2", "volume": {"size": 2}},
                    {"flavorRef": "1", "volume": {"size": 1}},
                ],
            }
        }
        started = time.monotonic()
        r = http.post("/clusters", json=body)
        assert r.status_code == 200, r.text
        cid = str(r.json()["cluster"]["id"])

        def built() -> bool:
            view = show(http, cid)
            assert view["task"]["name"] in ("BUILDING", "NONE"), view
            return bool(view["task"]["name"] == "NONE")

        wait_until("the cluster built", built, timeout=300, every=0.5)
        print(f"cluster of two built in {time.monotonic() - started:.1f} s")
        primary, replica = show(http, cid)["instances"]
        assert (primary["role"], replica["role"]) == ("primary", "replica")
        assert primary["status"] == replica["status"] == "ACTIVE"

        root = http.post(f"/instances/{primary['id']}/root")
        assert root.status_code == 200, root.text
        password = root.json()["user"]["password"]
        with connect(primary["ip"][0], password) as conn:
            conn.execute("CREATE TABLE notes (id int PRIMARY KEY)")
            conn.execute("INSERT INTO notes SELECT generate_series(1, 100)")
        # The primary's superuser (and its new password) is the replica's.
        wait_until(
            "the rows on the replica",
            lambda: count(replica["ip"][0], password) == 100,
            timeout=30,
        )
        with (
            connect(replica["ip"][0], password) as conn,
            pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
        ):
            conn.execute("INSERT INTO notes VALUES (101)")

        lag = show(http, cid)["instances"][1]["replication_lag_bytes"]
        assert isinstance(lag, int) and lag >= 0
        assert show(http, cid)["instances"][0]["replication_lag_bytes"] is None

        assert http.delete(f"/clusters/{cid}").status_code == 202
        wait_until(
            "the cluster deleted",
            lambda: http.get(f"/clusters/{cid}").status_code == 404,
            timeout=180,
        )
