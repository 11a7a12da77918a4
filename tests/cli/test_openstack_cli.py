"""The real OpenStack CLI (python-openstackclient with python-troveclient's `openstack
database ...` commands, from PyPI) against a `cellar serve` on the fake cloud, as a
Trove user meets it: no Keystone, the `admin_token` auth plugin with cellar's endpoint
and a cellar token. The client builds every URL from the endpoint
(`<endpoint>/instances`, ...), so the endpoint is `<cellar>/v1.0/<project>`.

Each command runs unmodified as a subprocess; each test asserts what the user sees (the
command's output, `-f json` where its values matter) and the state it leaves (the
instance as listed, the fake cloud's calls).

The tests that need no cloud of their own share one `cellar serve` (`shared`) and one
instance on it (`pg`): each `openstack` run costs ~1.5 s of the client's start, so state the
CLI has already shown is read back from cellar's API instead.

python-troveclient 8.11 has no `configuration unset`: `configuration set` (PUT) replaces a
group's values and `configuration parameter set` (PATCH) merges into them; both take the
group's id, never its name (the client looks none up, as Trove answers 404 for a name).
`instance create --configuration` takes an id too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cellar.drivers.fake import FakeCloud
from serving import Served, cellar, cellar_env, serving, wait_until

pytestmark = pytest.mark.slow

OPENSTACK = Path(sys.executable).parent / "openstack"


@dataclass
class Cli:
    """`openstack` as one token of one project sees cellar."""

    endpoint: str
    token: str
    home: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert OPENSTACK.exists(), f"{OPENSTACK} is missing: pip install -e '.[dev]'"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),  # no clouds.yaml of the machine's user
            "LANG": "C.UTF-8",
        }
        # `--os-token=...`: a token may begin with a dash, which argparse would take for
        # an option of its own.
        command = [str(OPENSTACK), "--os-auth-type", "admin_token"]
        command += [f"--os-endpoint={self.endpoint}", f"--os-token={self.token}", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, f"openstack {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "-f", "json"))

    def fails(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode != 0, f"openstack {' '.join(args)} succeeded:\n{done.stdout}"
        return done.stderr


@dataclass
class Cloud:
    served: Served
    user: Cli
    admin: Cli
    fake: Path

    def calls(self, operation: str) -> int:
        cloud = FakeCloud(self.fake)
        try:
            return cloud.call_count(operation)
        finally:
            cloud.close()

    def instance(self, instance_id: str) -> dict[str, Any]:
        with self.served.client() as http:
            found: dict[str, Any] = http.get(f"/instances/{instance_id}").json()["instance"]
        return found

    def wait_for(self, instance_id: str, status: str) -> None:
        wait_until(
            f"instance {instance_id} to be {status}",
            lambda: self.instance(instance_id)["status"] == status,
            timeout=60,
        )

    def get(self, path: str) -> Any:
        """What cellar's API answers (state the CLI need not show once more)."""
        with self.served.client() as http:
            r = http.get(path)
            return r.json() if r.status_code == 200 else r.status_code

    def overrides(self, instance_id: str) -> dict[str, Any]:
        """The settings the fake guest's overrides file holds."""
        cloud = FakeCloud(self.fake)
        try:
            guest = cloud.peek("guest", f"guest:{instance_id}")
        finally:
            cloud.close()
        assert guest is not None
        return dict(guest.get("overrides") or {})

    def live_ids(self) -> list[str]:
        with self.served.client() as http:
            return [i["id"] for i in http.get("/instances").json()["instances"]]


@contextmanager
def served_cloud(state: Path) -> Iterator[Cloud]:
    # A Keystone-like project id: the quota commands take a UUID-like one as is, and look
    # any other name up in Keystone.
    project = uuid.uuid4().hex
    env = cellar_env(state, CELLAR_BACKEND="fake")
    issued = cellar(env, "token", "issue", "--project", project, "--admin")
    assert issued.returncode == 0, issued.stderr
    admin_token = issued.stdout.strip().splitlines()[-1]
    home = state / "home"
    home.mkdir()
    with serving(env, project=project) as served:
        endpoint = f"{served.url}/v1.0/{project}"
        yield Cloud(
            served=served,
            user=Cli(endpoint, served.token, home),
            admin=Cli(endpoint, admin_token, home),
            fake=state / "fake-cloud.sqlite",
        )


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    with served_cloud(tmp_path) as served:
        yield served


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    """One `cellar serve` for the tests that need no cloud of their own."""
    with served_cloud(tmp_path_factory.mktemp("shared")) as served:
        yield served


@pytest.fixture(scope="module")
def pg(shared: Cloud) -> str:
    """One ACTIVE instance of `shared`, with a database and a user (the id)."""
    iid: str = shared.user.json(
        "database", "instance", "create", "pg", "--flavor", "1", "--size", "1",
        "--databases", "orders", "--users", "app:s3cret-pw",
    )["id"]  # fmt: skip
    shared.wait_for(iid, "ACTIVE")
    return iid


def fields(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {row[key]: row for row in rows}


def test_flavor_and_datastore_lists(cloud: Cloud) -> None:
    flavors = fields(cloud.user.json("database", "flavor", "list"), "Name")
    assert flavors["m1.small"] == {
        "ID": 2,
        "Name": "m1.small",
        "RAM": 1024,
        "vCPUs": 1,
        "Disk": 0,
        "Ephemeral": 0,
    }
    assert sorted(f["ID"] for f in flavors.values()) == [1, 2, 3, 4]
    shown = cloud.user.json("database", "flavor", "show", "m1.medium")
    assert (shown["id"], shown["ram"], shown["vcpus"]) == (3, 2048, 2)

    (datastore,) = cloud.user.json("datastore", "list")
    assert datastore["Name"] == "postgresql"
    shown = cloud.user.json("datastore", "show", "postgresql")
    assert shown["default_version"] == "15"
    (version,) = cloud.user.json("datastore", "version", "list", "postgresql")
    assert (version["Name"], version["Version"]) == ("15", "15")
    of_version = cloud.user.json(
        "database", "flavor", "list",
        "--datastore-type", "postgresql", "--datastore-version-id", version["ID"],
    )  # fmt: skip
    assert [f["Name"] for f in of_version] == ["m1.tiny", "m1.small", "m1.medium", "m1.large"]


def test_an_instance_from_create_to_delete(cloud: Cloud) -> None:
    created = cloud.user.json(
        "database", "instance", "create", "db1",
        "--flavor", "m1.tiny", "--size", "1",
        "--databases", "orders", "stock", "--users", "app:s3cret-pw",
        "--is-public", "--allowed-cidr", "10.20.0.0/24", "--allowed-cidr", "10.30.0.0/24",
    )  # fmt: skip
    iid = created["id"]
    assert created["name"] == "db1" and created["status"] == "BUILD"
    assert (created["flavor"], created["volume"], created["datastore"]) == ("1", 1, "postgresql")
    assert created["public"] is True
    assert created["allowed_cidrs"] == ["10.20.0.0/24", "10.30.0.0/24"]
    cloud.wait_for(iid, "ACTIVE")

    (listed,) = cloud.user.json("database", "instance", "list")
    assert listed["ID"] == iid and listed["Name"] == "db1"
    assert (listed["Status"], listed["Operating Status"]) == ("ACTIVE", "HEALTHY")
    assert (listed["Flavor ID"], listed["Size"], listed["Public"]) == ("1", 1, True)
    assert listed["Addresses"] == [{"address": cloud.instance(iid)["ip"][0], "type": "private"}]
    table = cloud.user.ok("database", "instance", "list")
    assert "| db1  | postgresql | 15" in table and "HEALTHY" in table

    shown = cloud.user.json("database", "instance", "show", "db1")
    assert shown["id"] == iid and shown["operating_status"] == "HEALTHY"
    assert shown["datastore_version"] == "15" and shown["ip"]

    # Resize the flavor (by name, as the CLI finds it), then the volume.
    resizes = cloud.calls("compute.resize_server")
    # (The API moves the task before it answers 202: ACTIVE again means the resize is done.)
    assert cloud.user.ok("database", "instance", "resize", "flavor", "db1", "m1.small") == ""
    cloud.wait_for(iid, "ACTIVE")
    assert cloud.calls("compute.resize_server") == resizes + 1
    extends = cloud.calls("volume.extend_volume")
    cloud.user.ok("database", "instance", "resize", "volume", "db1", "3")
    cloud.wait_for(iid, "ACTIVE")
    assert cloud.calls("volume.extend_volume") == extends + 1
    shown = cloud.user.json("database", "instance", "show", iid)
    assert (shown["flavor"], shown["volume"], shown["status"]) == ("2", 3, "ACTIVE")
    refused = cloud.user.fails("database", "instance", "resize", "volume", "db1", "2")
    assert "resize.volume.size" in refused and "HTTP 400" in refused

    # Restart is the datastore's (the guest), reboot the server's: an admin's command.
    restarts = cloud.calls("guest.restart")
    cloud.user.ok("database", "instance", "restart", "db1")
    cloud.wait_for(iid, "ACTIVE")
    assert cloud.calls("guest.restart") == restarts + 1
    refused = cloud.user.fails("database", "instance", "reboot", iid)
    assert "for administrators" in refused and "HTTP 403" in refused
    reboots = cloud.calls("compute.reboot_server")
    for ref in (iid, "db1"):  # by name too: the client then sends the found object
        cloud.admin.ok("database", "instance", "reboot", ref)
        cloud.wait_for(iid, "ACTIVE")
    assert cloud.calls("compute.reboot_server") == reboots + 2

    out = cloud.user.ok("database", "instance", "delete", "db1")
    assert f"Request to delete database instance {iid} has been accepted" in out
    wait_until("the instance to be gone", lambda: iid not in cloud.live_ids(), timeout=60)
    assert cloud.user.json("database", "instance", "list") == []
    gone = cloud.user.fails("database", "instance", "show", iid)
    assert "No instance with a name or ID" in gone


def test_reset_status_and_force_delete(cloud: Cloud) -> None:
    iid = cloud.user.json(
        "database", "instance", "create", "stuck", "--flavor", "1", "--size", "1",
        "--datastore", "postgresql", "--datastore-version", "15",
        "--datastore-version-number", "15",
    )["id"]  # fmt: skip
    cloud.wait_for(iid, "ACTIVE")

    refused = cloud.user.fails("database", "instance", "reset", "status", "stuck")
    assert "reset_status is for administrators" in refused and "HTTP 403" in refused
    cloud.admin.ok("database", "instance", "reset", "status", "stuck")
    (listed,) = cloud.user.json("database", "instance", "list")
    assert (listed["Status"], listed["Operating Status"]) == ("ACTIVE", "ERROR")

    cloud.admin.ok("database", "instance", "force", "delete", "stuck")
    wait_until("the instance to be gone", lambda: iid not in cloud.live_ids(), timeout=60)
    assert cloud.user.json("database", "instance", "list") == []


def test_replicas(cloud: Cloud) -> None:
    primary = cloud.user.json(
        "database", "instance", "create", "pg", "--flavor", "1", "--size", "1"
    )
    cloud.wait_for(primary["id"], "ACTIVE")
    replica = cloud.user.json("database", "instance", "create", "pg-r", "--replica-of", "pg")
    assert replica["replica_of"] == primary["id"]
    cloud.wait_for(replica["id"], "ACTIVE")
    roles = {i["Name"]: i["Role"] for i in cloud.user.json("database", "instance", "list")}
    assert roles == {"pg": "primary", "pg-r": "replica"}
    shown = cloud.user.json("database", "instance", "show", "pg")
    assert shown["replicas"] == replica["id"]

    cloud.user.ok("database", "instance", "promote", "pg-r")
    wait_until(
        "the switchover",
        lambda: cloud.instance(primary["id"]).get("replica_of", {}).get("id") == replica["id"],
        timeout=60,
    )
    cloud.wait_for(replica["id"], "ACTIVE")
    roles = {i["Name"]: i["Role"] for i in cloud.user.json("database", "instance", "list")}
    assert roles == {"pg": "replica", "pg-r": "primary"}


def test_limits_and_quotas(cloud: Cloud) -> None:
    project = cloud.served.project
    limits = cloud.user.ok("database", "limit", "list")
    for name, value in (("max_instances", 10), ("max_volumes", 40), ("max_backups", 50)):
        assert f"| {name} " in limits and f"| {value} " in limits.split(name, 1)[1].splitlines()[0]

    quota = fields(cloud.user.json("database", "quota", "show", project), "Resource")
    assert quota["instances"] == {"Resource": "instances", "In Use": 0, "Reserved": 0, "Limit": 10}
    assert quota["volumes"]["Limit"] == 40 and quota["backups"]["Limit"] == 50

    refused = cloud.user.fails("database", "quota", "update", project, "instances", "1")
    assert "HTTP 403" in refused
    assert cloud.admin.json("database", "quota", "update", project, "instances", "1") == {
        "instances": 1
    }
    cloud.admin.json("database", "quota", "update", project, "volumes", "3")

    first = cloud.user.json("database", "instance", "create", "a", "--flavor", "1", "--size", "2")
    over = cloud.user.fails("database", "instance", "create", "b", "--flavor", "1", "--size", "1")
    assert "Quota exceeded for resources: ['instances']. (HTTP 413)" in over
    assert [i["Name"] for i in cloud.user.json("database", "instance", "list")] == ["a"]

    cloud.wait_for(first["id"], "ACTIVE")
    over = cloud.user.fails("database", "instance", "resize", "volume", "a", "4")
    assert "Quota exceeded for resources: ['volumes']. (HTTP 413)" in over
    assert cloud.instance(first["id"])["volume"]["size"] == 2
    # Backups count too.
    cloud.admin.json("database", "quota", "update", project, "backups", "1")
    backup = cloud.user.json("database", "backup", "create", "b1", "--instance", "a")
    assert (backup["name"], backup["status"]) == ("b1", "NEW")
    over = cloud.user.fails("database", "backup", "create", "b2", "--instance", "a")
    assert "Quota exceeded for resources: ['backups']. (HTTP 413)" in over
    assert [b["Name"] for b in cloud.user.json("database", "backup", "list")] == ["b1"]

    quota = fields(cloud.user.json("database", "quota", "show", project), "Resource")
    assert quota["backups"]["In Use"] == 1
    assert (quota["instances"]["In Use"], quota["instances"]["Limit"]) == (1, 1)
    assert (quota["volumes"]["In Use"], quota["volumes"]["Limit"]) == (2, 3)
    assert quota["ram"]["In Use"] == 512


def test_an_admin_lists_every_project(cloud: Cloud, tmp_path: Path) -> None:
    mine = cloud.user.json("database", "instance", "create", "mine", "--flavor", "1", "--size", "1")
    other = uuid.uuid4().hex
    admin_elsewhere = Cli(f"{cloud.served.url}/v1.0/{other}", cloud.admin.token, cloud.admin.home)
    theirs = admin_elsewhere.json(
        "database", "instance", "create", "theirs", "--flavor", "1", "--size", "1"
    )
    assert [i["Name"] for i in cloud.user.json("database", "instance", "list")] == ["mine"]
    refused = cloud.user.fails("database", "instance", "list", "--all-projects")
    assert "HTTP 403" in refused

    every = fields(cloud.admin.json("database", "instance", "list", "--all-projects"), "Name")
    assert every["mine"]["ID"] == mine["id"] and every["theirs"]["ID"] == theirs["id"]
    assert every["mine"]["Tenant ID"] == cloud.served.project
    assert every["theirs"]["Tenant ID"] == other
    only = cloud.admin.json("database", "instance", "list", "--project-id", other)
    assert [i["Name"] for i in only] == ["theirs"]


def test_configuration_parameters(shared: Cloud) -> None:
    listed = shared.user.json(
        "database", "configuration", "parameter", "list", "15", "--datastore", "postgresql"
    )
    params = fields(listed, "Name")
    assert params["work_mem"] == {
        "Name": "work_mem",
        "Type": "integer",
        "Min Size": 64,
        "Max Size": 2147483647,
        "Restart Required": False,
    }
    assert params["max_connections"]["Restart Required"] is True
    assert "shared_preload_libraries" not in params  # the operator's, not a tenant's
    shown = shared.user.json(
        "database", "configuration", "parameter", "show", "15", "work_mem",
        "--datastore", "postgresql",
    )  # fmt: skip
    assert (shown["name"], shown["type"], shown["unit"]) == ("work_mem", "integer", "kB")
    assert (shown["min"], shown["restart_required"]) == (64, False)
    missing = shared.user.fails(
        "database", "configuration", "parameter", "show", "15", "nope",
        "--datastore", "postgresql",
    )  # fmt: skip
    assert "Configuration parameter nope could not be found. (HTTP 404)" in missing


def test_configuration_groups(shared: Cloud) -> None:
    created = shared.user.json(
        "database", "configuration", "create", "tuned", '{"work_mem": "8MB"}',
        "--datastore", "postgresql", "--datastore-version", "15",
        "--description", "for reports",
    )  # fmt: skip
    cid = created["id"]
    assert (created["name"], created["description"]) == ("tuned", "for reports")
    assert (created["datastore_name"], created["datastore_version_name"]) == ("postgresql", "15")
    assert (json.loads(created["values"]), created["instance_count"]) == ({"work_mem": "8MB"}, 0)
    listed = fields(shared.user.json("database", "configuration", "list"), "Name")["tuned"]
    assert (listed["ID"], listed["Description"]) == (cid, "for reports")
    assert (listed["Datastore Name"], listed["Datastore Version Name"]) == ("postgresql", "15")
    for values, refusal in (
        ('{"work_mem": "lots"}', "configuration.values.work_mem: must be an integer"),
        ('{"shared_preload_libraries": "x"}', "shared_preload_libraries may not be set"),
    ):
        refused = shared.user.fails(
            "database", "configuration", "create", "bad", values, "--datastore", "postgresql"
        )
        assert refusal in refused and "(HTTP 4" in refused
    assert [c["name"] for c in shared.get("/configurations")["configurations"]] == ["tuned"]

    # `parameter set` (PATCH) merges values; `set` (PUT) replaces them, and may rename.
    # Both take the group's id: the client looks no name up.
    shared.user.ok("database", "configuration", "parameter", "set", cid, '{"max_connections": 120}')
    shown = shared.user.json("database", "configuration", "show", "tuned")
    assert json.loads(shown["values"]) == {"work_mem": "8MB", "max_connections": 120}
    shared.user.ok(
        "database", "configuration", "set", cid, '{"work_mem": "16MB"}',
        "--name", "reports", "--description", "for the reports",
    )  # fmt: skip
    shown = shared.user.json("database", "configuration", "show", cid)
    assert (shown["name"], shown["description"]) == ("reports", "for the reports")
    assert json.loads(shown["values"]) == {"work_mem": "16MB"}
    by_name = shared.user.fails("database", "configuration", "set", "reports", "{}")
    assert "Configuration group reports could not be found. (HTTP 404)" in by_name

    # An instance created with the group (by id, as the client takes it) runs its values.
    iid = shared.user.json(
        "database", "instance", "create", "rep", "--flavor", "1", "--size", "1",
        "--configuration", cid,
    )["id"]  # fmt: skip
    shared.wait_for(iid, "ACTIVE")
    assert shared.instance(iid)["configuration"]["id"] == cid
    assert shared.overrides(iid) == {"work_mem": "16MB"}
    attached = shared.user.json("database", "configuration", "instances", "reports")
    assert attached == [{"ID": iid, "Name": "rep"}]
    assert shared.user.json("database", "configuration", "show", cid)["instance_count"] == 1
    assert shared.user.json("database", "configuration", "default", "rep") == {"work_mem": "16MB"}

    # A change to the group goes to its instances; a restart-only setting asks a restart.
    shared.user.ok("database", "configuration", "parameter", "set", cid, '{"max_connections": 150}')
    shared.wait_for(iid, "RESTART_REQUIRED")
    assert shared.overrides(iid) == {"work_mem": "16MB", "max_connections": "150"}
    shared.user.ok("database", "instance", "restart", "rep")
    shared.wait_for(iid, "ACTIVE")

    in_use = shared.user.fails("database", "configuration", "delete", "reports")
    assert "is attached to 1 instances" in in_use and "(HTTP 400)" in in_use
    twice = shared.user.fails("database", "configuration", "attach", "rep", "reports")
    assert "already has configuration group" in twice and "(HTTP 422)" in twice

    # Detach and attach, by the configuration commands and by `instance update`.
    shared.user.ok("database", "configuration", "detach", "rep")
    wait_until("the detach", lambda: "configuration" not in shared.instance(iid), timeout=60)
    wait_until("the overrides to go", lambda: shared.overrides(iid) == {}, timeout=60)
    assert shared.get(f"/configurations/{cid}/instances")["instances"] == []
    shared.user.ok("database", "configuration", "attach", "rep", "reports")
    wait_until(
        "the attach",
        lambda: shared.instance(iid).get("configuration", {}).get("id") == cid,
        timeout=60,
    )
    wait_until("the overrides", lambda: shared.overrides(iid) != {}, timeout=60)
    shared.user.ok("database", "instance", "update", "rep", "--remove-configuration")
    wait_until("the detach", lambda: "configuration" not in shared.instance(iid), timeout=60)
    shared.user.ok("database", "instance", "update", "rep", "--configuration", cid)
    wait_until("the attach", lambda: "configuration" in shared.instance(iid), timeout=60)
    shared.user.ok("database", "configuration", "detach", "rep")
    wait_until("the detach", lambda: "configuration" not in shared.instance(iid), timeout=60)

    shared.user.ok("database", "configuration", "delete", "reports")
    assert shared.user.json("database", "configuration", "list") == []
    assert shared.get(f"/configurations/{cid}") == 404


def test_instance_update_and_replica_detach(shared: Cloud, pg: str) -> None:
    # `instance update --name` (PUT /instances/{id}), then back.
    shared.user.ok("database", "instance", "update", "pg", "--name", "pg-renamed")
    assert shared.user.json("database", "instance", "show", pg)["name"] == "pg-renamed"
    assert shared.instance(pg)["name"] == "pg-renamed"
    shared.user.ok("database", "instance", "update", pg, "--name", "pg")
    assert shared.instance(pg)["name"] == "pg"

    # `instance detach` (PUT with replica_of null): the replica stands on its own.
    replica = shared.user.json("database", "instance", "create", "pg-r", "--replica-of", "pg")
    shared.wait_for(replica["id"], "ACTIVE")
    not_one = shared.user.fails("database", "instance", "detach", "pg")
    assert f"instance {pg} is not a replica (HTTP 400)" in not_one
    shared.user.ok("database", "instance", "detach", "pg-r")
    wait_until(
        "the detach",
        lambda: (
            "replica_of" not in shared.instance(replica["id"])
            and shared.instance(replica["id"])["status"] == "ACTIVE"
        ),
        timeout=60,
    )
    roles = {i["Name"]: i["Role"] for i in shared.user.json("database", "instance", "list")}
    assert (roles["pg"], roles["pg-r"]) == ("", "")
    assert "replicas" not in shared.user.json("database", "instance", "show", "pg")
    shared.user.ok("database", "instance", "delete", "pg-r")
    wait_until("pg-r to be gone", lambda: replica["id"] not in shared.live_ids(), timeout=60)


def test_databases_and_users(shared: Cloud, pg: str) -> None:
    def names(*args: str) -> list[str]:
        return [row["Name"] for row in shared.user.json("database", *args)]

    def access(user: str) -> list[str]:
        return [
            d["name"] for d in shared.get(f"/instances/{pg}/users/{user}/databases")["databases"]
        ]

    assert names("db", "list", "pg") == ["orders"]
    assert shared.user.ok("database", "db", "create", "pg", "stock") == ""
    shared.user.ok("database", "db", "create", "pg", "tmp")
    shared.user.ok("database", "db", "delete", "pg", "tmp")
    assert names("db", "list", "pg") == ["orders", "stock"]

    (app,) = shared.user.json("database", "user", "list", "pg")
    assert app == {"Name": "app", "Host": "%", "Databases": "orders"}
    shown = shared.user.json("database", "user", "show", "pg", "app")
    assert shown == {"name": "app", "host": "%", "databases": [{"name": "orders"}]}

    shared.user.ok("database", "user", "create", "pg", "reader", "s3cret-2", "--databases", "stock")
    assert names("user", "show", "access", "pg", "reader") == ["stock"]
    shared.user.ok("database", "user", "grant", "access", "pg", "reader", "orders")
    assert access("reader") == ["orders", "stock"]
    shared.user.ok("database", "user", "revoke", "access", "pg", "reader", "stock")
    assert access("reader") == ["orders"]
    again = shared.user.fails("database", "user", "create", "pg", "reader", "pw-3")
    assert "reader" in again and "(HTTP 4" in again

    updates = shared.calls("guest.update_user")
    shared.user.ok(
        "database", "user", "update", "attributes", "pg", "reader", "--new_password", "n3w-pw"
    )
    shared.user.ok(
        "database", "user", "update", "attributes", "pg", "reader", "--new_name", "analyst"
    )
    assert shared.calls("guest.update_user") == updates + 2
    assert names("user", "list", "pg") == ["analyst", "app"]
    assert access("analyst") == ["orders"]
    shared.user.ok("database", "user", "delete", "pg", "analyst")
    assert [u["name"] for u in shared.get(f"/instances/{pg}/users")["users"]] == ["app"]
    assert shared.get(f"/instances/{pg}/users/analyst") == 404


def test_root(shared: Cloud, pg: str) -> None:
    assert shared.user.json("database", "root", "show", "pg") == {"is_root_enabled": False}
    enabled = shared.user.json("database", "root", "enable", "pg")
    assert len(enabled["password"]) >= 16
    assert shared.user.json("database", "root", "show", "pg") == {"is_root_enabled": True}
    chosen = shared.user.json("database", "root", "enable", "pg", "--root_password", "r00t-pw")
    assert chosen == {"name": "postgres", "password": "r00t-pw"}
    assert shared.user.ok("database", "root", "disable", "pg") == ""
    # Whether root was ever enabled, as Trove answers: a disable leaves it.
    assert shared.user.json("database", "root", "show", "pg") == {"is_root_enabled": True}
