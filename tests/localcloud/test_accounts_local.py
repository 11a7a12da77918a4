"""Users, databases and root on a real PostgreSQL 15 of the local cloud, through
`cellar serve --backend local`: what each call does is checked by logging in."""

from __future__ import annotations

import os
import uuid
from typing import Any

import httpx
import psycopg
import pytest
from test_local_serve import create, delete_all, local_env, wait_active  # noqa: F401

from serving import serving, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local cloud needs root")


def login(address: str, user: str, password: str, dbname: str) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=address, port=5432, user=user, password=password, dbname=dbname,
        connect_timeout=5, autocommit=True,
    )  # fmt: skip


def refused(address: str, user: str, password: str, dbname: str) -> str:
    """Why PostgreSQL refuses this login (it must)."""
    with pytest.raises(psycopg.OperationalError) as caught:
        login(address, user, password, dbname).close()
    return str(caught.value)


def ok(r: httpx.Response, status: int = 202) -> httpx.Response:
    assert r.status_code == status, r.text
    return r


def test_users_databases_and_root_on_postgresql(local_env: dict[str, str]) -> None:  # noqa: F811
    first, second = "pw1-" + uuid.uuid4().hex[:8], "pw2-" + uuid.uuid4().hex[:8]
    with serving(local_env) as served, served.client() as http:
        iid = create(http, "accounts")
        address = wait_active(http, iid)["ip"][0]
        base = f"/instances/{iid}"

        # A database and a user granted it: the user logs in and creates a table there
        # (PostgreSQL 15 lets only the owner create in `public` unless granted).
        ok(http.post(f"{base}/databases", json={"databases": [{"name": "shop"}]}))
        users = {"users": [{"name": "alice", "password": first, "databases": [{"name": "shop"}]}]}
        ok(http.post(f"{base}/users", json=users))
        conflict = ok(http.post(f"{base}/users", json=users), 409).json()
        assert conflict["conflictingRequest"]["message"] == (
            'A user with the name "alice" already exists.'
        )
        with login(address, "alice", first, "shop") as conn:
            conn.execute("CREATE TABLE orders (id int)")
            conn.execute("INSERT INTO orders VALUES (1)")
        # Not granted: the instance's other database is closed to her.
        assert "permission denied" in refused(address, "alice", first, "app")
        listed = ok(http.get(f"{base}/users"), 200).json()["users"]
        assert {"name": "alice", "host": "%", "databases": [{"name": "shop"}]} in listed
        assert [u["name"] for u in listed] == ["alice", "app"]  # no postgres, no replicator
        databases = ok(http.get(f"{base}/databases"), 200).json()["databases"]
        assert databases == [{"name": "app"}, {"name": "shop"}]

        # Renamed: she logs in with the new name (and the same password), not the old.
        ok(http.put(f"{base}/users/alice", json={"user": {"name": "alicia"}}))
        with login(address, "alicia", first, "shop") as conn:
            assert conn.execute("SELECT count(*) FROM orders").fetchone() == (1,)
        refused(address, "alice", first, "shop")

        # A new password works, the old one no longer does.
        ok(http.put(f"{base}/users/alicia", json={"user": {"password": second}}))
        with login(address, "alicia", second, "shop"):
            pass
        assert "password authentication failed" in refused(address, "alicia", first, "shop")

        # Revoked: her open session ends, and she cannot connect again.
        session = login(address, "alicia", second, "shop")
        ok(http.delete(f"{base}/users/alicia/databases/shop"))
        with pytest.raises(psycopg.OperationalError):
            session.execute("SELECT 1")
        session.close()
        assert "permission denied" in refused(address, "alicia", second, "shop")
        assert ok(http.get(f"{base}/users/alicia/databases"), 200).json() == {"databases": []}
        # Granted again, she is back.
        ok(http.put(f"{base}/users/alicia/databases", json={"databases": [{"name": "shop"}]}))
        with login(address, "alicia", second, "shop") as conn:
            conn.execute("INSERT INTO orders VALUES (2)")

        # Root: a superuser password that works over the network until disabled.
        assert ok(http.get(f"{base}/root"), 200).json() == {"rootEnabled": False}
        root = ok(http.post(f"{base}/root"), 200).json()["user"]
        assert ok(http.get(f"{base}/root"), 200).json() == {"rootEnabled": True}
        with login(address, root["name"], root["password"], "postgres") as conn:
            row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            assert row.fetchone() == (True,)

        # A user dropped leaves her tables to the superuser.
        ok(http.delete(f"{base}/users/alicia"))
        refused(address, "alicia", second, "shop")
        with login(address, root["name"], root["password"], "shop") as conn:
            owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'orders'")
            assert owner.fetchone() == ("postgres",)
            assert conn.execute("SELECT count(*) FROM orders").fetchone() == (2,)

        ok(http.delete(f"{base}/root"), 204)
        assert "password authentication failed" in refused(
            address, root["name"], root["password"], "postgres"
        )
        # Whether root was ever enabled (Trove's history): a disable leaves it.
        assert ok(http.get(f"{base}/root"), 200).json() == {"rootEnabled": True}

        ok(http.delete(f"{base}/databases/shop"))
        assert ok(http.get(f"{base}/databases"), 200).json() == {"databases": [{"name": "app"}]}
        missing = ok(http.delete(f"{base}/databases/shop"), 404).json()
        assert (
            missing["itemNotFound"]["message"] == "Database shop cannot be found on the instance."
        )
        wrong = {"databases": [{"name": "x", "character_set": "KLINGON"}]}
        invalid = ok(http.post(f"{base}/databases", json=wrong), 400).json()
        assert "KLINGON is not a valid encoding name" in invalid["badRequest"]["message"]
        delete_all(served, [iid])


def test_a_replica_gets_its_primarys_users_by_replication(
    local_env: dict[str, str],  # noqa: F811
) -> None:
    password = "pw-" + uuid.uuid4().hex[:8]
    with serving(local_env) as served, served.client() as http:
        primary = create(http, "main")
        wait_active(http, primary)
        replica = create(http, "copy", replica_of=primary, users=[], databases=[])
        address = wait_active(http, replica, timeout=300)["ip"][0]

        users = {
            "users": [{"name": "reader", "password": password, "databases": [{"name": "app"}]}]
        }
        ok(http.post(f"/instances/{primary}/users", json=users))

        def replicated() -> bool:
            listed = ok(http.get(f"/instances/{replica}/users"), 200).json()["users"]
            return "reader" in [u["name"] for u in listed]

        wait_until("the user on the replica", replicated, timeout=30)
        with login(address, "reader", password, "app") as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        r = ok(http.post(f"/instances/{replica}/users", json=users), 422)
        assert "read-only replica" in r.text
        delete_all(served, [replica])  # a primary with replicas is not deleted
        delete_all(served, [primary])
