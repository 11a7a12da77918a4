"""Trove's user, database and root API on the fake cloud: every route, its bodies and
its refusals (the fake guest keeps users and databases and refuses what PostgreSQL
refuses)."""

from __future__ import annotations

from typing import Any

import pytest
from plane import ControlPlane


def ready(plane: ControlPlane, **extra: Any) -> str:
    iid = plane.create(**extra)
    plane.run()
    assert plane.show(iid)["status"] == "ACTIVE"
    return iid


def call(plane: ControlPlane, method: str, path: str, body: Any = None) -> Any:
    kwargs = {} if body is None else {"json": body}
    return plane.http.request(method, plane.url(path), **kwargs)


def fault(r: Any, status: int) -> str:
    assert r.status_code == status, r.text
    (content,) = r.json().values()
    assert content["code"] == status
    return str(content["message"])


@pytest.fixture
def iid(plane: ControlPlane) -> str:
    return ready(
        plane,
        databases=[{"name": "appdb"}],
        users=[{"name": "app", "password": "app-secret-1", "databases": [{"name": "appdb"}]}],
    )


def test_databases_list_create_delete(plane: ControlPlane, iid: str) -> None:
    base = f"/instances/{iid}/databases"
    r = call(plane, "GET", base)
    assert r.status_code == 200 and r.json() == {"databases": [{"name": "appdb"}]}

    body = {"databases": [{"name": "sales", "character_set": "UTF8", "collate": "C"},
                          {"name": "hr"}]}  # fmt: skip
    assert call(plane, "POST", base, body).status_code == 202
    names = [d["name"] for d in call(plane, "GET", base).json()["databases"]]
    assert names == ["appdb", "hr", "sales"]

    # One that exists: 409, and none of the request is made.
    r = call(plane, "POST", base, {"databases": [{"name": "new1"}, {"name": "hr"}]})
    assert "hr" in fault(r, 409)
    assert "new1" not in str(call(plane, "GET", base).json())

    assert call(plane, "DELETE", f"{base}/hr").status_code == 202
    assert "missing" in fault(call(plane, "DELETE", f"{base}/missing"), 404)
    assert "hr" in fault(call(plane, "DELETE", f"{base}/hr"), 404)

    # Deleting a database takes it from its users' access.
    assert call(plane, "DELETE", f"{base}/appdb").status_code == 202
    assert call(plane, "GET", f"/instances/{iid}/users/app/databases").json() == {"databases": []}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "databases"),
        ({"databases": "x"}, "databases"),
        ({"databases": [{"name": ""}]}, "databases[0].name"),
        ({"databases": [{"name": "1bad"}]}, "databases[0].name"),
        ({"databases": [{"name": "a" * 64}]}, "databases[0].name"),
        ({"databases": [{"name": "postgres"}]}, "databases[0].name"),
        ({"databases": [{"name": "template1"}]}, "databases[0].name"),
        ({"databases": [{"name": "x", "collate": "no such; thing"}]}, "databases[0].collate"),
        ({"databases": [{"name": "x"}, {"name": "x"}]}, "databases"),
        ({"databases": [{"name": "x", "owner": "y"}]}, "databases[0].owner"),
        ({"databases": [{"name": "x", "character_set": "KLINGON"}]}, "databases"),
    ],
)
def test_database_create_refusals_name_the_field(
    plane: ControlPlane, iid: str, body: Any, field: str
) -> None:
    r = call(plane, "POST", f"/instances/{iid}/databases", body)
    assert fault(r, 400).startswith(f"{field}:")


def test_reserved_databases_are_hidden_and_refused(plane: ControlPlane, iid: str) -> None:
    r = call(plane, "DELETE", f"/instances/{iid}/databases/postgres")
    assert fault(r, 400).startswith("name:")
    r = call(plane, "DELETE", f"/instances/{iid}/databases/template0")
    assert "reserved" in fault(r, 400)


def test_users_create_show_list_and_access(plane: ControlPlane, iid: str) -> None:
    base = f"/instances/{iid}/users"
    r = call(plane, "GET", base)
    assert r.status_code == 200
    assert r.json() == {"users": [{"name": "app", "host": "%", "databases": [{"name": "appdb"}]}]}
    body = {"users": [{"name": "bob", "password": "pw-bob-1", "host": "%",
                       "databases": [{"name": "appdb"}]},
                      {"name": "carol", "password": "pw-carol-1"}]}  # fmt: skip
    assert call(plane, "POST", base, body).status_code == 202
    shown = call(plane, "GET", f"{base}/bob")
    assert shown.status_code == 200
    assert shown.json() == {"user": {"name": "bob", "host": "%", "databases": [{"name": "appdb"}]}}
    # troveclient's `name@host`, quoted.
    assert call(plane, "GET", f"{base}/carol%40%25").json()["user"]["name"] == "carol"
    assert "nobody" in fault(call(plane, "GET", f"{base}/nobody"), 404)

    # Exists: 409 and nothing made; a database that does not exist: 404 and nothing made.
    r = call(plane, "POST", base, {"users": [{"name": "dave", "password": "x"},
                                             {"name": "bob", "password": "y"}]})  # fmt: skip
    assert "bob" in fault(r, 409)
    r = call(plane, "POST", base, {"users": [{"name": "dave", "password": "x",
                                              "databases": [{"name": "nodb"}]}]})  # fmt: skip
    assert "nodb" in fault(r, 404)
    assert "dave" not in str(call(plane, "GET", base).json())

    # Grant, list access, revoke.
    call(plane, "POST", f"/instances/{iid}/databases", {"databases": [{"name": "other"}]})
    grants = {"databases": [{"name": "appdb"}, {"name": "other"}]}
    r = call(plane, "PUT", f"{base}/carol/databases", grants)
    assert r.status_code == 202, r.text
    assert call(plane, "GET", f"{base}/carol/databases").json() == {
        "databases": [{"name": "appdb"}, {"name": "other"}]
    }
    r = call(plane, "PUT", f"{base}/carol/databases", {"databases": [{"name": "nodb"}]})
    assert "nodb" in fault(r, 404)
    r = call(plane, "PUT", f"{base}/nobody/databases", {"databases": [{"name": "appdb"}]})
    assert "nobody" in fault(r, 404)
    assert call(plane, "DELETE", f"{base}/carol/databases/appdb").status_code == 202
    assert "appdb" in fault(call(plane, "DELETE", f"{base}/carol/databases/appdb"), 404)
    assert call(plane, "GET", f"{base}/carol/databases").json() == {
        "databases": [{"name": "other"}]
    }
    assert "nobody" in fault(call(plane, "GET", f"{base}/nobody/databases"), 404)


def test_users_update_passwords_and_delete(plane: ControlPlane, iid: str) -> None:
    base = f"/instances/{iid}/users"
    call(plane, "POST", base, {"users": [{"name": "bob", "password": "pw-1"}]})

    # Rename: the grants follow; a name that exists is 409; an unknown user 404.
    r = call(plane, "PUT", f"{base}/app", {"user": {"name": "app2", "password": "new-pw"}})
    assert r.status_code == 202, r.text
    assert call(plane, "GET", f"{base}/app2").json()["user"]["databases"] == [{"name": "appdb"}]
    assert call(plane, "GET", f"{base}/app").status_code == 404
    assert "bob" in fault(call(plane, "PUT", f"{base}/app2", {"user": {"name": "bob"}}), 409)
    assert "ghost" in fault(call(plane, "PUT", f"{base}/ghost", {"user": {"password": "x"}}), 404)
    assert fault(call(plane, "PUT", f"{base}/bob", {"user": {}}), 400).startswith("user:")
    r = call(plane, "PUT", f"{base}/bob", {"user": {"name": "postgres"}})
    assert fault(r, 400).startswith("user.name:")

    # Trove's bulk password change (PUT /users): all or none.
    r = call(plane, "PUT", base, {"users": [{"name": "bob", "password": "b2"}]})
    assert r.status_code == 202, r.text
    r = call(plane, "PUT", base, {"users": [{"name": "bob", "password": "b3"},
                                            {"name": "ghost", "password": "g"}]})  # fmt: skip
    assert "ghost" in fault(r, 404)
    r = call(plane, "PUT", base, {"users": [{"name": "postgres", "password": "x"}]})
    assert fault(r, 400).startswith("users[0].name:")
    r = call(plane, "PUT", base, {"users": [{"name": "bob"}]})
    assert fault(r, 400).startswith("users[0].password:")

    assert call(plane, "DELETE", f"{base}/bob").status_code == 202
    assert "bob" in fault(call(plane, "DELETE", f"{base}/bob"), 404)
    assert [u["name"] for u in call(plane, "GET", base).json()["users"]] == ["app2"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "users"),
        ({"users": [{"name": "x"}]}, "users[0].password"),
        ({"users": [{"name": "x", "password": ""}]}, "users[0].password"),
        ({"users": [{"name": "x", "password": "a\u0000b"}]}, "users[0].password"),
        ({"users": [{"password": "p"}]}, "users[0].name"),
        ({"users": [{"name": "bad name", "password": "p"}]}, "users[0].name"),
        ({"users": [{"name": "postgres", "password": "p"}]}, "users[0].name"),
        ({"users": [{"name": "cellar_replicator", "password": "p"}]}, "users[0].name"),
        ({"users": [{"name": "pg_monitor2", "password": "p"}]}, "users[0].name"),
        ({"users": [{"name": "x", "password": "p", "host": "10.0.0.1"}]}, "users[0].host"),
        ({"users": [{"name": "x", "password": "p"}, {"name": "x", "password": "q"}]}, "users"),
        ({"users": [{"name": "x", "password": "p", "databases": [{"name": "-"}]}]},
         "users[0].databases[0].name"),
    ],
)  # fmt: skip
def test_user_create_refusals_name_the_field(
    plane: ControlPlane, iid: str, body: Any, field: str
) -> None:
    r = call(plane, "POST", f"/instances/{iid}/users", body)
    assert fault(r, 400).startswith(f"{field}:")


def test_reserved_users_are_hidden_and_refused(plane: ControlPlane, iid: str) -> None:
    for name in ("postgres", "cellar_replicator", "root"):
        for method, path in (("GET", name), ("DELETE", name), ("GET", f"{name}/databases")):
            r = call(plane, method, f"/instances/{iid}/users/{path}")
            assert "reserved" in fault(r, 400), (method, path)
    # And at instance create.
    r = plane.http.post(plane.url("/instances"), json={"instance": {
        "name": "x", "flavorRef": "1", "volume": {"size": 1},
        "users": [{"name": "postgres", "password": "p"}]}})  # fmt: skip
    assert fault(r, 400).startswith("instance.users[0].name:")


def test_lists_are_paginated_by_name(plane: ControlPlane, iid: str) -> None:
    users = [{"name": f"u{i}", "password": "p"} for i in range(5)]
    call(plane, "POST", f"/instances/{iid}/users", {"users": users})
    r = call(plane, "GET", f"/instances/{iid}/users?limit=2")
    assert [u["name"] for u in r.json()["users"]] == ["app", "u0"]
    (link,) = r.json()["links"]
    assert link["rel"] == "next" and link["href"].endswith(
        f"/instances/{iid}/users?limit=2&marker=u0"
    )
    r = call(plane, "GET", f"/instances/{iid}/users?limit=2&marker=u0")
    assert [u["name"] for u in r.json()["users"]] == ["u1", "u2"]
    r = call(plane, "GET", f"/instances/{iid}/users?limit=10&marker=u2")
    assert [u["name"] for u in r.json()["users"]] == ["u3", "u4"] and "links" not in r.json()
    assert call(plane, "GET", f"/instances/{iid}/users?limit=0").status_code == 400

    call(plane, "POST", f"/instances/{iid}/databases", {"databases": [{"name": "zz"}]})
    r = call(plane, "GET", f"/instances/{iid}/databases?limit=1")
    assert r.json()["databases"] == [{"name": "appdb"}] and r.json()["links"]
    r = call(plane, "GET", f"/instances/{iid}/databases?marker=appdb")
    assert r.json() == {"databases": [{"name": "zz"}]}


def test_root_enable_show_disable(plane: ControlPlane, iid: str) -> None:
    base = f"/instances/{iid}/root"
    assert call(plane, "GET", base).json() == {"rootEnabled": False}
    r = call(plane, "DELETE", base)
    assert fault(r, 404) == "Root user has never been enabled on the instance."

    r = call(plane, "POST", base)
    assert r.status_code == 200 and r.json()["user"]["name"] == "postgres"
    assert r.json()["user"]["password"]
    assert call(plane, "GET", base).json() == {"rootEnabled": True}
    # Trove's `{"password"}`: the caller's own.
    r = call(plane, "POST", base, {"password": "my-own-root-pw"})
    assert r.status_code == 200 and r.json()["user"]["password"] == "my-own-root-pw"
    assert fault(call(plane, "POST", base, {"password": ""}), 400).startswith("password:")
    assert fault(call(plane, "POST", base, {"pass": "x"}), 400).startswith("pass:")

    assert call(plane, "DELETE", base).status_code == 204
    # Trove's `rootEnabled` says whether root was ever enabled: a disable leaves it.
    assert call(plane, "GET", base).json() == {"rootEnabled": True}
    assert call(plane, "DELETE", base).status_code == 204
    # Nothing of the passwords is kept where a user could see it.
    assert "my-own-root-pw" not in str(plane.events(iid)) + str(plane.show(iid))


def test_an_instance_not_ready_refuses_with_422(plane: ControlPlane) -> None:
    iid = plane.create()  # BUILD
    for method, path, body in [
        ("GET", "users", None),
        ("POST", "users", {"users": [{"name": "a", "password": "p"}]}),
        ("GET", "users/a", None),
        ("GET", "databases", None),
        ("POST", "databases", {"databases": [{"name": "a"}]}),
        ("DELETE", "databases/a", None),
        ("GET", "root", None),
        ("POST", "root", None),
        ("DELETE", "root", None),
    ]:
        r = call(plane, method, f"/instances/{iid}/{path}", body)
        assert "not ready, status: BUILD" in fault(r, 422), (method, path)
    assert "nope" in fault(call(plane, "GET", "/instances/nope/users"), 404)
    assert "nope" in fault(call(plane, "POST", "/instances/nope/databases",
                                {"databases": [{"name": "a"}]}), 404)  # fmt: skip


def test_a_replica_reads_its_primarys_users_and_refuses_changes(
    plane: ControlPlane, iid: str
) -> None:
    r = plane.http.post(plane.url("/instances"), json={"instance": {
        "name": "copy", "flavorRef": "1", "volume": {"size": 1}, "replica_of": iid}})  # fmt: skip
    assert r.status_code == 200, r.text
    rid = str(r.json()["instance"]["id"])
    plane.run()
    assert plane.show(rid)["status"] == "ACTIVE"
    call(plane, "POST", f"/instances/{iid}/users", {"users": [{"name": "late", "password": "p"}]})
    listed = call(plane, "GET", f"/instances/{rid}/users").json()["users"]
    assert [u["name"] for u in listed] == ["app", "late"]
    assert call(plane, "GET", f"/instances/{rid}/databases").json() == {
        "databases": [{"name": "appdb"}]
    }
    for method, path, body in [
        ("POST", "users", {"users": [{"name": "a", "password": "p"}]}),
        ("PUT", "users/app", {"user": {"password": "p"}}),
        ("DELETE", "users/app", None),
        ("PUT", "users/app/databases", {"databases": [{"name": "appdb"}]}),
        ("DELETE", "users/app/databases/appdb", None),
        ("POST", "databases", {"databases": [{"name": "a"}]}),
        ("DELETE", "databases/appdb", None),
        ("POST", "root", None),
    ]:
        r = call(plane, method, f"/instances/{rid}/{path}", body)
        message = fault(r, 422)
        assert "read-only replica" in message and iid in message, (method, path)


def test_a_clusters_users_are_made_on_its_primary(plane: ControlPlane) -> None:
    members = [{"flavorRef": "1", "volume": {"size": 1}} for _ in range(2)]
    r = plane.http.post(
        plane.url("/clusters"), json={"cluster": {"name": "pg", "instances": members}}
    )
    assert r.status_code == 200, r.text
    cid = r.json()["cluster"]["id"]
    plane.run()
    view = plane.http.get(plane.url(f"/clusters/{cid}")).json()["cluster"]
    roles = {m["role"]: m["id"] for m in view["instances"]}
    primary, replica = roles["primary"], roles["replica"]

    r = call(plane, "POST", f"/instances/{primary}/databases", {"databases": [{"name": "d"}]})
    assert r.status_code == 202, r.text
    users = {"users": [{"name": "u", "password": "p", "databases": [{"name": "d"}]}]}
    assert call(plane, "POST", f"/instances/{primary}/users", users).status_code == 202
    # The replica has them by replication; it refuses to make any itself.
    assert call(plane, "GET", f"/instances/{replica}/users/u/databases").json() == {
        "databases": [{"name": "d"}]
    }
    message = fault(call(plane, "POST", f"/instances/{replica}/users", users), 422)
    assert primary in message

    # Trove's cluster root: on the primary, recorded for every member.
    assert call(plane, "GET", f"/clusters/{cid}/root").json() == {"rootEnabled": False}
    r = call(plane, "POST", f"/clusters/{cid}/root")
    assert r.status_code == 200 and r.json()["user"]["password"], r.text
    for path in (f"/clusters/{cid}/root", f"/instances/{replica}/root"):
        assert call(plane, "GET", path).json() == {"rootEnabled": True}
    assert "read-only replica" in fault(call(plane, "DELETE", f"/instances/{replica}/root"), 422)
    assert call(plane, "DELETE", f"/instances/{primary}/root").status_code == 204
    assert call(plane, "GET", f"/instances/{replica}/root").json() == {"rootEnabled": True}
    assert "nope" in fault(call(plane, "POST", "/clusters/nope/root"), 404)


ODD_BODIES: list[Any] = [
    None, [], "x", 1, {}, {"users": None}, {"users": [1]}, {"users": [{"name": 1}]},
    {"users": [{"name": "a", "password": "p", "databases": "d"}]},
    {"databases": [{"name": "a", "character_set": 1}]}, {"databases": [[]]},
    {"user": []}, {"user": {"name": None}}, {"password": 5}, {"databases": [{"name": None}]},
]  # fmt: skip
ODD_NAMES = ["%00", "x" * 300, "@", "%25", "a%40b%40c", "pg_x", "ü", "%2e%2e"]


def test_odd_input_never_gets_a_5xx(plane: ControlPlane, iid: str) -> None:
    routes = [
        ("GET", "users?limit=abc"), ("GET", "users?marker=%00"), ("POST", "users"),
        ("PUT", "users"), ("POST", "databases"), ("POST", "root"),
    ]  # fmt: skip
    for name in ODD_NAMES:
        routes += [
            ("GET", f"users/{name}"), ("PUT", f"users/{name}"), ("DELETE", f"users/{name}"),
            ("GET", f"users/{name}/databases"), ("PUT", f"users/{name}/databases"),
            ("DELETE", f"users/app/databases/{name}"), ("DELETE", f"databases/{name}"),
        ]  # fmt: skip
    for method, path in routes:
        for body in ODD_BODIES if method in ("POST", "PUT") else [None]:
            r = call(plane, method, f"/instances/{iid}/{path}", body)
            assert r.status_code < 500, (method, path, body, r.text)
    for path in ("users/%00", f"users/{'x' * 64}", f"databases/{'x' * 64}"):
        assert "cannot be found" in fault(call(plane, "DELETE", f"/instances/{iid}/{path}"), 404)
