"""Servers: cgroups sized by the flavor, a config drive, an agent inside that reboot
restarts, and state that another process (or a restarted cloud) sees the same."""

from __future__ import annotations

import json
import stat
import subprocess

from cloud_helpers import LARGE, SMALL, agent, create, root, wait_for

from cellar.localcloud import network
from cellar.localcloud.cgroups import ServerCgroups, alive
from cellar.localcloud.network import SERVER, namespace_exists
from cellar.localcloud.servers import Servers, state_path
from cellar.localcloud.state import CloudState, Resource

pytestmark = root

MIB = 2**20


def cgroups_of(cloud: Servers, server_id: str) -> ServerCgroups:
    return ServerCgroups.from_data(cloud.require(server_id).data["cgroups"])


def netns_of(pid: int) -> str:
    return subprocess.run(
        ["ip", "netns", "identify", str(pid)], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_the_flavor_sets_the_cgroup_limits_and_resize_changes_them(cloud: Servers) -> None:
    server = create(cloud)
    cgroups = cgroups_of(cloud, server.id)
    assert cgroups.limits() == (512 * MIB, 100_000)
    (agent_pid,) = cloud.pids(server.id)
    for directory in cgroups.dirs:
        assert str(agent_pid) in (directory / "cgroup.procs").read_text().split()

    cloud.resize(server.id, LARGE)
    assert cloud.get(server.id).status == "VERIFY_RESIZE"
    assert cgroups.limits() == (1024 * MIB, 200_000)
    meta = json.loads((cloud.config_dir(server.id) / "meta_data.json").read_text())
    assert meta["flavor"]["id"] == LARGE.id
    cloud.revert_resize(server.id)
    assert (cloud.get(server.id).status, cloud.get(server.id).flavor) == ("ACTIVE", SMALL)
    assert cgroups.limits() == (512 * MIB, 100_000)

    cloud.resize(server.id, LARGE)
    cloud.confirm_resize(server.id)
    assert (cloud.get(server.id).status, cloud.get(server.id).flavor) == ("ACTIVE", LARGE)
    assert cgroups.limits() == (1024 * MIB, 200_000)
    assert cloud.pids(server.id) == [agent_pid]  # a resize restarts nothing


def test_reboot_kills_every_process_and_starts_the_agent_again(cloud: Servers) -> None:
    forking = agent(["sh", "-c", "sleep 1000 & exec sleep 1000"])
    servers = Servers(cloud.settings, cloud.state, agent_command=forking, grace_s=2.0)
    server = servers.create(name="forks", flavor=SMALL, image="test")
    wait_for(lambda: len(servers.pids(server.id)) == 2, "two processes")
    before = servers.pids(server.id)
    servers.reboot(server.id)
    assert servers.get(server.id).status == "ACTIVE"
    assert not any(alive(pid) for pid in before)
    wait_for(lambda: len(servers.pids(server.id)) == 2, "two processes again")
    after = servers.pids(server.id)
    assert set(after).isdisjoint(before)
    assert {netns_of(pid) for pid in after} == {server.netns}


def test_the_config_drive(cloud: Servers) -> None:
    server = create(cloud, user_data={"secret": "s3", "control_plane_url": "http://x"})
    config = cloud.config_dir(server.id)
    assert json.loads((config / "user_data.json").read_text()) == {
        "secret": "s3",
        "control_plane_url": "http://x",
    }
    meta = json.loads((config / "meta_data.json").read_text())
    assert meta == {
        "server_id": server.id,
        "name": server.name,
        "address": server.address,
        "gateway": cloud.net.gateway,
        "data_dir": str(server.data_dir),
        "flavor": {"id": "small", "name": "small", "ram_mb": 512, "vcpus": 1},
        "metadata": {"purpose": "test"},
    }
    assert stat.S_IMODE(config.stat().st_mode) == 0o700  # user data may hold secrets
    assert stat.S_IMODE((config / "user_data.json").stat().st_mode) == 0o600


def test_a_restarted_cloud_finds_its_servers_and_a_reboot_rebuilds_one(cloud: Servers) -> None:
    server = create(cloud)
    again = Servers(cloud.settings, CloudState(state_path(cloud.settings)))
    assert again.get(server.id) == cloud.get(server.id)
    assert again.get(server.id).status == "ACTIVE"

    # The host restarts: processes, namespace and cgroups are gone, the rows are not.
    cgroups = cgroups_of(cloud, server.id)
    cgroups.kill_all(1.0)
    network.unplug(cloud.net, server.id)
    cgroups.remove()
    assert again.get(server.id).status == "SHUTOFF"
    cloud.reboot(server.id)
    rebuilt = again.get(server.id)
    assert (rebuilt.status, rebuilt.address) == ("ACTIVE", server.address)
    assert namespace_exists(server.netns) and len(cloud.pids(server.id)) == 1


def test_a_build_whose_process_died_is_error_and_can_be_deleted(cloud: Servers) -> None:
    server = create(cloud)
    builder = subprocess.Popen(["true"])
    builder.wait()
    row = cloud.require(server.id)
    data = {**row.data, "status": "BUILD", "busy_pid": builder.pid}
    cloud.state.put(Resource(row.id, SERVER, row.name, None, data))
    assert cloud.get(server.id).status == "ERROR"
    cloud.delete(server.id)
    assert cloud.all() == [] and not namespace_exists(server.netns)
