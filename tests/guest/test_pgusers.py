"""Users and databases on a real PostgreSQL through the agent's commands: PostgreSQL's
refusals become the agent's answers (409 exists, 404 not found, 400 a bad value), and
no password reaches the server's log."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellar.guest.accounts import ACCOUNT_COMMANDS
from cellar.guest.manager import GuestExists, GuestNotFound
from cellar.guest.pgusers import PgAccounts
from guest.helpers import free_port, needs_real_postgres
from guest.test_postgresql import connect, manager, request


@pytest.fixture
def accounts(data_dir: Path) -> tuple[PgAccounts, int]:
    port = free_port()
    pg = manager(data_dir, port)
    pg.prepare(request(port))
    return pg.accounts(), port


@needs_real_postgres
def test_refusals_are_the_agents(accounts: tuple[PgAccounts, int], data_dir: Path) -> None:
    a, port = accounts
    run = ACCOUNT_COMMANDS
    run["create_databases"](a, {"databases": [{"name": "shop"}]})
    with pytest.raises(GuestExists, match='"shop" already exists'):
        run["create_databases"](a, {"databases": [{"name": "new"}, {"name": "shop"}]})
    assert [d.name for d in a.list_databases()] == ["appdb", "shop"]  # "new" not made
    with pytest.raises(GuestExists):
        run["create_databases"](a, {"databases": [{"name": "postgres"}]})
    with pytest.raises(ValueError, match=r"databases: .*KLINGON"):
        run["create_databases"](a, {"databases": [{"name": "x", "character_set": "KLINGON"}]})
    with pytest.raises(GuestNotFound):
        run["delete_database"](a, {"name": "nope"})

    secret = "never-in-the-log-0x77"
    body = {"users": [{"name": "bob", "password": secret, "databases": ["shop"]}]}
    run["create_users"](a, body)
    with pytest.raises(GuestExists, match='"bob" already exists'):
        run["create_users"](a, body)
    with pytest.raises(GuestNotFound, match="nodb"):
        run["create_users"](a, {"users": [{"name": "c", "password": "p", "databases": ["nodb"]}]})
    with pytest.raises(GuestExists):
        run["update_user"](a, {"name": "bob", "new_name": "app"})
    with pytest.raises(GuestNotFound):
        run["update_user"](a, {"name": "ghost", "password": "x"})
    with pytest.raises(GuestNotFound):
        run["revoke"](a, {"name": "bob", "database": "appdb"})  # never granted
    with pytest.raises(GuestNotFound):
        run["grant"](a, {"name": "bob", "databases": ["nodb"]})
    assert run["users"](a, {}) == {
        "users": [{"name": "app", "databases": ["appdb"]}, {"name": "bob", "databases": ["shop"]}]
    }
    with connect(port, "bob", secret, "shop") as conn:
        conn.execute("CREATE TABLE t (v int)")
    log = (data_dir / "postgresql.log").read_text()
    assert "KLINGON is not a valid encoding" in log and "CREATE" not in log
    assert secret not in log
