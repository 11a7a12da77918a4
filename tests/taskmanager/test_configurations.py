"""Configuration groups through the API, the task manager and the fake cloud: every route,
its codes and bodies (Trove's), and its errors."""

from __future__ import annotations

from typing import Any

import pytest
from plane import ControlPlane
from test_clusters import create_cluster, member

PG15 = "8f7c3b1e-0c5e-4c55-9d8e-5f0a3a3d1015"


def make_group(plane: ControlPlane, values: dict[str, Any], name: str = "g1") -> dict[str, Any]:
    body = {"configuration": {"name": name, "values": values,
                              "datastore": {"type": "postgresql", "version": "15"}}}  # fmt: skip
    r = plane.http.post(plane.url("/configurations"), json=body)
    assert r.status_code == 200, r.text
    return dict(r.json()["configuration"])


def attach(plane: ControlPlane, iid: str, gid: str | None, status: int = 202) -> Any:
    body: dict[str, Any] = {"instance": {} if gid is None else {"configuration": gid}}
    r = plane.http.put(plane.url(f"/instances/{iid}"), json=body)
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def in_force(plane: ControlPlane, iid: str) -> dict[str, str]:
    r = plane.http.get(plane.url(f"/instances/{iid}/configuration"))
    assert r.status_code == 200, r.text
    return dict(r.json()["instance"]["configuration"])


def active(plane: ControlPlane) -> str:
    iid = plane.create()
    plane.run()
    assert plane.show(iid)["status"] == "ACTIVE"
    return iid


def test_create_show_list_and_the_view(plane: ControlPlane) -> None:
    group = make_group(plane, {"work_mem": "8MB", "Statement_Timeout": 5000, "jit": False})
    assert group["name"] == "g1" and group["description"] is None
    assert group["values"] == {"work_mem": "8MB", "statement_timeout": 5000, "jit": False}
    assert group["instance_count"] == 0
    assert (group["datastore_name"], group["datastore_version_name"]) == ("postgresql", "15")
    assert group["datastore_version_id"] == PG15
    assert group["created"] and group["updated"]
    shown = plane.http.get(plane.url(f"/configurations/{group['id']}")).json()["configuration"]
    assert shown == group
    listed = plane.http.get(plane.url("/configurations")).json()["configurations"]
    assert [g["id"] for g in listed] == [group["id"]]
    assert "values" not in listed[0]  # Trove's list view has no values
    # Another project sees nothing of it.
    plane.project = "p2"
    r = plane.http.get(plane.url(f"/configurations/{group['id']}"))
    assert r.status_code in (401, 403, 404)


@pytest.mark.parametrize(
    ("values", "status", "names"),
    [
        ({"work_mem": "10TB"}, 400, ["configuration.values.work_mem", "64", "2147483647"]),
        ({"work_mem": 12}, 400, ["configuration.values.work_mem", "from 64 to"]),
        ({"work_mem": "8 parsecs"}, 400, ["configuration.values.work_mem", "unit"]),
        ({"max_connections": 0}, 400, ["values.max_connections", "from 1 to 262143"]),
        ({"random_page_cost": "cheap"}, 400, ["values.random_page_cost", "number"]),
        ({"synchronous_commit": "sometimes"}, 400, ["synchronous_commit", "remote_apply"]),
        ({"jit": "maybe"}, 400, ["values.jit", "true or false"]),
        ({"search_path": 5}, 400, ["values.search_path", "string"]),
        ({"no_such_setting": 1}, 422, ["no_such_setting", "not supported"]),
        ({"wal_keep_segments": 1}, 422, ["wal_keep_segments"]),  # gone in PG 13
        ({"archive_command": "rm -rf /"}, 422, ["archive_command", "shell command"]),
        ({"port": 6543}, 422, ["port"]),
        ({"listen_addresses": "*"}, 422, ["listen_addresses"]),
        ({"ssl_cert_file": "/etc/passwd"}, 422, ["ssl_cert_file"]),
        ({"shared_preload_libraries": "x"}, 422, ["shared_preload_libraries"]),
        ({"primary_conninfo": "host=x"}, 422, ["primary_conninfo"]),
        ({"wal_level": "minimal"}, 422, ["wal_level"]),
    ],
)
def test_bad_values_are_refused_naming_the_parameter(
    plane: ControlPlane, values: dict[str, Any], status: int, names: list[str]
) -> None:
    body = {"configuration": {"name": "bad", "values": values}}
    r = plane.http.post(plane.url("/configurations"), json=body)
    assert r.status_code == status, r.text
    text = r.text
    for name in names:
        assert name in text, text
    assert plane.http.get(plane.url("/configurations")).json()["configurations"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "configuration"),
        ({"configuration": {"values": {}}}, "configuration.name"),
        ({"configuration": {"name": "x"}}, "configuration.values"),
        ({"configuration": {"name": "x", "values": []}}, "configuration.values"),
        ({"configuration": {"name": "x", "values": {}, "extra": 1}}, "configuration.extra"),
        ({"configuration": {"name": "x", "values": {}, "datastore": {"type": "nosql"}}},
         "configuration.datastore.type"),
    ],
)  # fmt: skip
def test_malformed_bodies_get_400_naming_the_field(
    plane: ControlPlane, body: Any, field: str
) -> None:
    r = plane.http.post(plane.url("/configurations"), json=body)
    assert r.status_code == 400, r.text
    assert field in r.text, r.text


def test_the_parameter_catalogue(plane: ControlPlane) -> None:
    for base in ("/datastores/postgresql/versions/15", f"/datastores/versions/{PG15}"):
        r = plane.http.get(plane.url(f"{base}/parameters"))
        assert r.status_code == 200, r.text
        params = {p["name"]: p for p in r.json()["configuration-parameters"]}
        # From pg_settings: the restart flags and types Trove's file gets wrong.
        assert params["max_worker_processes"]["restart_required"] is True
        assert params["work_mem"] == {
            "name": "work_mem", "datastore_version_id": PG15, "restart_required": False,
            "type": "integer", "min": 64, "max": 2147483647, "unit": "kB",
        }  # fmt: skip
        assert params["random_page_cost"]["type"] == "float"
        assert params["synchronous_commit"]["type"] == "string"
        assert "remote_apply" in params["synchronous_commit"]["allowed_values"]
        for denied in ("archive_command", "port", "data_directory", "wal_keep_segments"):
            assert denied not in params
        one = plane.http.get(plane.url(f"{base}/parameters/shared_buffers"))
        assert one.status_code == 200
        assert one.json()["restart_required"] is True and one.json()["unit"] == "8kB"
        assert plane.http.get(plane.url(f"{base}/parameters/port")).status_code == 404
        assert plane.http.get(plane.url(f"{base}/parameters/nope")).status_code == 404
    assert plane.http.get(plane.url("/datastores/mysql/versions/8/parameters")).status_code == 404
    assert plane.http.get(plane.url("/datastores/versions/nope/parameters")).status_code == 404


def test_attach_a_dynamic_group_applies_at_once(plane: ControlPlane) -> None:
    iid = active(plane)
    group = make_group(plane, {"work_mem": "8MB", "statement_timeout": "5s"})
    attach(plane, iid, group["id"])
    plane.run()
    inst = plane.show(iid)
    assert inst["status"] == "ACTIVE", inst
    assert inst["configuration"]["id"] == group["id"]
    assert inst["configuration"]["name"] == "g1"
    assert inst["configuration"]["links"][0]["href"].endswith(f"/configurations/{group['id']}")
    assert in_force(plane, iid) == {"statement_timeout": "5s", "work_mem": "8MB"}
    shown = plane.http.get(plane.url(f"/configurations/{group['id']}")).json()["configuration"]
    assert shown["instance_count"] == 1
    r = plane.http.get(plane.url(f"/configurations/{group['id']}/instances"))
    assert r.json() == {"instances": [{"id": iid, "name": "db1"}]}
    # One group at a time (Trove: ConfigurationAlreadyAttached).
    other = make_group(plane, {"work_mem": "16MB"}, name="g2")
    r = attach(plane, iid, other["id"], status=422)
    assert group["id"] in r["unprocessableEntity"]["message"]
    # Detach: the defaults are back.
    attach(plane, iid, None)
    plane.run()
    assert in_force(plane, iid) == {}
    assert plane.show(iid)["status"] == "ACTIVE"
    assert "configuration" not in plane.show(iid)
    r = plane.http.get(plane.url(f"/configurations/{group['id']}/instances"))
    assert r.json() == {"instances": []}


def test_a_restart_only_parameter_asks_for_a_restart_until_the_restart(
    plane: ControlPlane,
) -> None:
    iid = active(plane)
    group = make_group(plane, {"max_connections": 150, "work_mem": "8MB"})
    attach(plane, iid, group["id"])
    plane.run()
    assert plane.show(iid)["status"] == "RESTART_REQUIRED"
    assert in_force(plane, iid) == {"work_mem": "8MB"}  # the dynamic one is in force
    plane.action(iid, {"restart": {}})
    plane.run()
    assert plane.show(iid)["status"] == "ACTIVE"
    assert in_force(plane, iid) == {"max_connections": "150", "work_mem": "8MB"}
    # A change of dynamic values only does not ask for a restart.
    r = plane.http.patch(
        plane.url(f"/configurations/{group['id']}"),
        json={"configuration": {"values": {"work_mem": "16MB"}}},
    )
    assert r.status_code == 200, r.text
    plane.run()
    assert plane.show(iid)["status"] == "ACTIVE"
    assert in_force(plane, iid) == {"max_connections": "150", "work_mem": "16MB"}
    # Detaching a restart-only value: pending until the restart.
    attach(plane, iid, None)
    plane.run()
    assert plane.show(iid)["status"] == "RESTART_REQUIRED"
    plane.action(iid, {"restart": {}})
    plane.run()
    assert plane.show(iid)["status"] == "ACTIVE"
    assert in_force(plane, iid) == {}


def test_put_replaces_and_patch_merges_on_every_attached_instance(plane: ControlPlane) -> None:
    a, b = active(plane), active(plane)
    group = make_group(plane, {"work_mem": "8MB", "jit": False})
    attach(plane, a, group["id"])
    attach(plane, b, group["id"])
    plane.run()
    gid = group["id"]
    r = plane.http.put(
        plane.url(f"/configurations/{gid}"),
        json={"configuration": {"name": "renamed", "values": {"statement_timeout": 1000}}},
    )
    assert r.status_code == 202, r.text
    plane.run()
    shown = plane.http.get(plane.url(f"/configurations/{gid}")).json()["configuration"]
    assert (shown["name"], shown["values"], shown["instance_count"]) == (
        "renamed", {"statement_timeout": 1000}, 2,
    )  # fmt: skip
    assert in_force(plane, a) == in_force(plane, b) == {"statement_timeout": "1000"}
    r = plane.http.patch(
        plane.url(f"/configurations/{gid}"),
        json={"configuration": {"values": {"jit": True}}},
    )
    assert r.status_code == 200
    plane.run()
    assert in_force(plane, a) == in_force(plane, b) == {"jit": "on", "statement_timeout": "1000"}
    # Bad values change nothing.
    r = plane.http.patch(
        plane.url(f"/configurations/{gid}"),
        json={"configuration": {"values": {"work_mem": -1}}},
    )
    assert r.status_code == 400 and "configuration.values.work_mem" in r.text
    r = plane.http.put(plane.url(f"/configurations/{gid}"), json={"configuration": {}})
    assert r.status_code == 400 and "configuration.values" in r.text
    assert plane.http.get(plane.url(f"/configurations/{gid}")).json()["configuration"][
        "values"
    ] == {"jit": True, "statement_timeout": 1000}


def test_delete_is_refused_while_attached(plane: ControlPlane) -> None:
    iid = active(plane)
    group = make_group(plane, {"work_mem": "8MB"})
    attach(plane, iid, group["id"])
    plane.run()
    r = plane.http.delete(plane.url(f"/configurations/{group['id']}"))
    assert r.status_code == 400 and iid in r.text
    # troveclient's `edit` detaches with a null configuration through PATCH.
    r = plane.http.patch(plane.url(f"/instances/{iid}"), json={"instance": {"configuration": None}})
    assert r.status_code == 202, r.text
    plane.run()
    r = plane.http.delete(plane.url(f"/configurations/{group['id']}"))
    assert r.status_code == 202
    assert plane.http.get(plane.url(f"/configurations/{group['id']}")).status_code == 404
    assert plane.http.delete(plane.url(f"/configurations/{group['id']}")).status_code == 404


def test_attach_errors(plane: ControlPlane) -> None:
    iid = plane.create()
    group = make_group(plane, {"work_mem": "8MB"})
    # Still building: not ready (Trove's validate_can_perform_action).
    attach(plane, iid, group["id"], status=422)
    plane.run()
    attach(plane, iid, "no-such-group", status=404)
    attach(plane, "no-such-instance", group["id"], status=404)
    r = plane.http.put(plane.url(f"/instances/{iid}"), json={"instance": {"configuration": [5]}})
    assert r.status_code == 400 and "instance.configuration" in r.text
    r = plane.http.put(plane.url(f"/instances/{iid}"), json={"nothing": 1})
    assert r.status_code == 400
    # Trove: besides a name, one change at a time.
    r = plane.http.put(
        plane.url(f"/instances/{iid}"),
        json={"instance": {"configuration": group["id"], "replica_of": None}},
    )
    assert r.status_code == 400 and "one attribute" in r.text
    # A rename with an attach, through PUT (current troveclient's `update`).
    r = plane.http.put(
        plane.url(f"/instances/{iid}"),
        json={"instance": {"name": "renamed", "configuration": group["id"]}},
    )
    assert r.status_code == 202, r.text
    plane.run()
    assert plane.show(iid)["name"] == "renamed"
    assert plane.show(iid)["configuration"]["id"] == group["id"]
    # troveclient's `update(remove_configuration=True)`: a null configuration via PUT.
    r = plane.http.put(plane.url(f"/instances/{iid}"), json={"instance": {"configuration": None}})
    assert r.status_code == 202
    plane.run()
    assert "configuration" not in plane.show(iid)
    attach(plane, iid, None)  # nothing attached: nothing to do
    assert plane.show(iid)["status"] == "ACTIVE"


def test_a_group_given_at_create_is_in_force_when_active(plane: ControlPlane) -> None:
    group = make_group(plane, {"max_connections": 120, "work_mem": "8MB"})
    iid = plane.create(configuration=group["id"])
    plane.run()
    inst = plane.show(iid)
    assert inst["status"] == "ACTIVE", inst  # restarted during the build, nothing pending
    assert in_force(plane, iid) == {"max_connections": "120", "work_mem": "8MB"}
    r = plane.http.get(plane.url(f"/configurations/{group['id']}/instances"))
    assert [i["id"] for i in r.json()["instances"]] == [iid]
    r = plane.http.post(
        plane.url("/instances"),
        json={"instance": {"name": "x", "flavorRef": "1", "volume": {"size": 1},
                           "configuration": "nope"}},
    )  # fmt: skip
    assert r.status_code == 404


def test_on_a_cluster_every_member_gets_the_group(plane: ControlPlane) -> None:
    cid = create_cluster(plane, [member(), member()])
    plane.run()
    ids = [m["id"] for m in plane.http.get(plane.url(f"/clusters/{cid}")).json()["cluster"]
           ["instances"]]  # fmt: skip
    group = make_group(plane, {"work_mem": "8MB"})
    attach(plane, ids[1], group["id"])
    plane.run()
    for iid in ids:
        assert in_force(plane, iid) == {"work_mem": "8MB"}
    r = plane.http.get(plane.url(f"/configurations/{group['id']}/instances"))
    assert sorted(i["id"] for i in r.json()["instances"]) == sorted(ids)
    attach(plane, ids[0], None)
    plane.run()
    for iid in ids:
        assert in_force(plane, iid) == {}


def test_a_replication_group_takes_no_standby_limit(plane: ControlPlane) -> None:
    cid = create_cluster(plane, [member(), member()])
    plane.run()
    primary = plane.http.get(plane.url(f"/clusters/{cid}")).json()["cluster"]["instances"][0]
    group = make_group(plane, {"max_connections": 200})
    r = attach(plane, primary["id"], group["id"], status=422)
    assert "max_connections" in r["unprocessableEntity"]["message"]
    group = make_group(plane, {"work_mem": "8MB"}, name="g2")
    attach(plane, primary["id"], group["id"])
    plane.run()
    r = plane.http.patch(
        plane.url(f"/configurations/{group['id']}"),
        json={"configuration": {"values": {"max_locks_per_transaction": 128}}},
    )
    assert r.status_code == 422 and "max_locks_per_transaction" in r.text
    shown = plane.http.get(plane.url(f"/configurations/{group['id']}")).json()["configuration"]
    assert shown["values"] == {"work_mem": "8MB"}


def test_a_primary_left_alone_takes_any_value(plane: ControlPlane) -> None:
    """Once its last replica is detached, a primary has no standby to keep up with."""
    primary = active(plane)
    r = plane.http.post(
        plane.url("/instances"), json={"instance": {"name": "r1", "replica_of": primary}}
    )
    assert r.status_code == 200, r.text
    replica = r.json()["instance"]["id"]
    plane.run()
    r = plane.http.put(plane.url(f"/instances/{replica}"), json={"instance": {"replica_of": None}})
    assert r.status_code == 202, r.text
    plane.run()
    assert "replicas" not in plane.show(primary)
    group = make_group(plane, {"max_connections": 150})
    attach(plane, primary, group["id"])
    plane.run()
    r = plane.http.patch(
        plane.url(f"/configurations/{group['id']}"),
        json={"configuration": {"values": {"max_locks_per_transaction": 128}}},
    )
    assert r.status_code == 200, r.text
    plane.run()
    assert plane.show(primary)["status"] == "RESTART_REQUIRED"
    plane.action(primary, {"restart": {}})
    plane.run()
    assert in_force(plane, primary) == {
        "max_connections": "150",
        "max_locks_per_transaction": "128",
    }


def test_new_replicas_and_members_get_the_primarys_group(plane: ControlPlane) -> None:
    primary = active(plane)
    group = make_group(plane, {"work_mem": "8MB", "max_connections": 150})
    attach(plane, primary, group["id"])
    plane.run()
    plane.action(primary, {"restart": {}})
    plane.run()
    r = plane.http.post(
        plane.url("/instances"), json={"instance": {"name": "r1", "replica_of": primary}}
    )
    assert r.status_code == 200, r.text
    replica = r.json()["instance"]["id"]
    r = plane.http.post(
        plane.url("/instances"),
        json={"instance": {"name": "r2", "replica_of": primary, "configuration": group["id"]}},
    )
    assert r.status_code == 400 and "instance.configuration" in r.text
    plane.run()
    inst = plane.show(replica)
    assert inst["status"] == "ACTIVE", inst  # restarted while built: nothing pending
    assert inst["configuration"]["id"] == group["id"]
    assert in_force(plane, replica) == in_force(plane, primary) == {
        "max_connections": "150", "work_mem": "8MB",
    }  # fmt: skip


def test_a_reboot_also_takes_the_restart_only_values(plane: ControlPlane) -> None:
    iid = active(plane)
    group = make_group(plane, {"max_connections": 150})
    attach(plane, iid, group["id"])
    plane.run()
    assert plane.show(iid)["status"] == "RESTART_REQUIRED"
    plane.action(iid, {"reboot": {}})
    plane.run()
    assert plane.show(iid)["status"] == "ACTIVE"
    assert in_force(plane, iid) == {"max_connections": "150"}
