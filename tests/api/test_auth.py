"""Tokens, projects and admins: 401, 403, and other projects' instances as 404."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.helpers import Api, MakeApi, create, fault_of
from cellar.cli import main
from cellar.config import Settings
from cellar.db.engine import transaction
from cellar.db.models import Token
from cellar.db.tokens import issue_token, resolve_token, revoke_token
from cellar.domain.errors import Unauthorized


def test_a_token_is_stored_only_as_its_hash(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        token = issue_token(session, project_id="p1", is_admin=True)
    with transaction(sessions) as session:
        (row,) = session.scalars(select(Token))
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token not in (row.token_hash, row.project_id)
        assert resolve_token(session, token=token) == ("p1", True)
        assert revoke_token(session, token=token)
        with pytest.raises(Unauthorized):
            resolve_token(session, token=token)


def test_missing_token_is_401(api: Api) -> None:
    anonymous = Api(api.client, "p1", None)
    response = anonymous.get("/instances")
    assert "X-Auth-Token" in fault_of(response, "unauthorized", 401)
    assert response.headers["WWW-Authenticate"] == 'Token realm="cellar"'


def test_unknown_token_is_401(api: Api) -> None:
    forged = Api(api.client, "p1", "not-a-token")
    fault_of(forged.get("/flavors"), "unauthorized", 401)
    fault_of(forged.post("/instances", json={}), "unauthorized", 401)


def test_another_projects_path_is_403(api: Api) -> None:
    message = fault_of(api.as_tenant("p2").get("/instances"), "forbidden", 403)
    assert "p2" in message


def test_another_projects_instance_is_404(api: Api, make_api: MakeApi) -> None:
    mine = create(api)
    other = make_api("p2")
    for response in (
        other.get(f"/instances/{mine['id']}"),
        other.delete(f"/instances/{mine['id']}"),
        other.post(f"/instances/{mine['id']}/action", json={"restart": {}}),
        other.get(f"/instances/{mine['id']}/events"),
    ):
        fault_of(response, "itemNotFound", 404)
    assert other.get("/instances").json() == {"instances": []}


def test_admin_may_use_any_path_and_see_any_instance(api: Api, make_api: MakeApi) -> None:
    mine = create(api)
    admin = make_api("ops", admin=True)
    assert admin.get(f"/instances/{mine['id']}").json()["instance"]["id"] == mine["id"]
    assert admin.as_tenant("p1").get(f"/instances/{mine['id']}").status_code == 200
    listed = admin.as_tenant("p1").get("/instances").json()["instances"]
    assert [i["id"] for i in listed] == [mine["id"]]
    # The admin's own project has none; all_projects lists everyone's.
    assert admin.get("/instances").json()["instances"] == []
    everyone = admin.get("/instances", params={"all_projects": "true"}).json()["instances"]
    assert [i["id"] for i in everyone] == [mine["id"]]


def test_admin_creates_in_the_paths_project(make_api: MakeApi) -> None:
    admin = make_api("ops", admin=True)
    made = create(admin.as_tenant("p7"))
    assert made["links"][0]["href"].endswith(f"/v1.0/p7/instances/{made['id']}")
    assert [i["id"] for i in make_api("p7").get("/instances").json()["instances"]] == [made["id"]]


def test_all_projects_is_403_for_non_admins(api: Api) -> None:
    response = api.get("/instances", params={"all_projects": "true"})
    assert "all_projects" in fault_of(response, "forbidden", 403)
    assert api.get("/instances", params={"all_projects": "false"}).status_code == 200


def test_a_token_expires_a_day_after_its_issue_by_default(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        issue_token(session, project_id="p1")
    with transaction(sessions) as session:
        (row,) = session.scalars(select(Token))
        assert row.expires - row.created == timedelta(days=1)


def test_an_expired_token_is_401(api: Api, sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        expired = issue_token(session, project_id="p1", ttl_s=0)
    message = fault_of(Api(api.client, "p1", expired).get("/instances"), "unauthorized", 401)
    assert "expired" in message
    assert api.get("/instances").status_code == 200  # a valid token still is


def test_cellar_token_issue_and_revoke(api: Api, settings: Settings) -> None:
    """The operator's commands on the API's database: an issued token works, with the
    lifetime asked for; once revoked, its very next request gets 401."""
    runner = CliRunner()
    env = {
        "CELLAR_STATE_DIR": str(settings.state_dir),
        "CELLAR_DATABASE_URL": settings.database_url,
    }
    issued = runner.invoke(main, ["token", "issue", "--project", "p1", "--ttl", "600"], env=env)
    assert issued.exit_code == 0, issued.output
    token = issued.stdout.strip().splitlines()[-1]
    assert "valid 600 s" in issued.stderr
    user = Api(api.client, "p1", token)
    assert user.get("/instances").status_code == 200

    revoked = runner.invoke(main, ["token", "revoke"], env=env, input=token + "\n")
    assert revoked.exit_code == 0, revoked.output
    assert "token revoked" in revoked.output and token not in revoked.output
    fault_of(user.get("/instances"), "unauthorized", 401)

    again = runner.invoke(main, ["token", "revoke", "--token", token], env=env)
    assert again.exit_code != 0 and "no such token" in again.output
