"""The real OpenStack CLI (python-openstackclient with python-troveclient's `openstack
database ...` commands, from PyPI) against a `cellar serve` on the fake cloud, as a
Trove user meets it: no Keystone, the `admin_token` auth plugin with cellar's endpoint
and a cellar token. The client builds every URL from the endpoint
(`<endpoint>/instances`, ...), so the endpoint is `<cellar>/v1.0/<project>`.

Each command runs unmodified as a subprocess; each test asserts what the user sees (the
command's output, `-f json` where its values matter) and the state it leaves (the
instance as listed, the fake cloud's calls).

Not here yet, built in parallel on other branches: `database configuration ...`,
`database db ...`, `database user ...`, `database root ...` and `instance create
--configuration` (to be added to this suite when they land), and the commands that send
Trove's `PUT /instances/{id}` (`instance update`, `instance detach`), which comes with
the configuration groups.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
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

    def live_ids(self) -> list[str]:
        with self.served.client() as http:
            return [i["id"] for i in http.get("/instances").json()["instances"]]


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    # A Keystone-like project id: the quota commands take a UUID-like one as is, and look
    # any other name up in Keystone.
    project = uuid.uuid4().hex
    env = cellar_env(tmp_path, CELLAR_BACKEND="fake")
    issued = cellar(env, "token", "issue", "--project", project, "--admin")
    assert issued.returncode == 0, issued.stderr
    admin_token = issued.stdout.strip().splitlines()[-1]
    home = tmp_path / "home"
    home.mkdir()
    with serving(env, project=project) as served:
        endpoint = f"{served.url}/v1.0/{project}"
        yield Cloud(
            served=served,
            user=Cli(endpoint, served.token, home),
            admin=Cli(endpoint, admin_token, home),
            fake=tmp_path / "fake-cloud.sqlite",
        )


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
