"""Volumes: XFS on a loop device, mounted at the server's data directory (and seen by
its agent, started before the mount), grown online with a file open, kept on detach."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cloud_helpers import create, root

from cellar.localcloud.cleanup import leftovers
from cellar.localcloud.servers import Servers
from cellar.localcloud.system import LocalCloudError
from cellar.localcloud.volumes import (
    GIB,
    VolumeAttached,
    VolumeTooSmall,
    is_mount_point,
    loops_of,
)

pytestmark = root


def df_size(path: Path) -> int:
    out = subprocess.run(
        ["df", "-B1", "--output=size", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return int(out.split()[-1])


def gib(size_bytes: int) -> float:
    return size_bytes / GIB


def test_a_volume_is_mounted_written_and_grown_online(cloud: Servers) -> None:
    server = create(cloud)
    agent_pid = cloud.pids(server.id)[0]
    volume = cloud.volumes.create(name="v", size_gb=1)
    assert (volume.status, volume.image.stat().st_size) == ("available", GIB)
    cloud.attach_volume(server.id, volume.id)
    data = server.data_dir
    assert cloud.volumes.get(volume.id).status == "in-use"
    assert 0.9 < gib(df_size(data)) <= 1.0
    meta = json.loads((cloud.config_dir(server.id) / "meta_data.json").read_text())
    assert meta["data_dir"] == str(data)
    # The agent was started before the mount and sees it all the same.
    assert f" {data} " in Path(f"/proc/{agent_pid}/mountinfo").read_text()

    with open(data / "held", "w") as held:
        held.write("x" * 4096)
        held.flush()
        cloud.volumes.extend(volume.id, 2)
        assert 1.9 < gib(df_size(data)) <= 2.0
        held.write("y" * 4096)
        with pytest.raises(LocalCloudError, match="busy"):  # never pulled from under a user
            cloud.detach_volume(server.id, volume.id)
        assert cloud.volumes.get(volume.id).status == "in-use"

    cloud.detach_volume(server.id, volume.id)
    assert not is_mount_point(data) and loops_of(volume.image) == []
    assert cloud.volumes.get(volume.id).status == "available"
    cloud.volumes.extend(volume.id, 3)  # detached: the filesystem grows at the next attach
    cloud.attach_volume(server.id, volume.id)
    assert 2.9 < gib(df_size(data)) <= 3.0
    assert (data / "held").read_text() == "x" * 4096 + "y" * 4096


def test_volume_refusals(cloud: Servers) -> None:
    server = create(cloud)
    volume = cloud.volumes.create(name="v", size_gb=2)
    cloud.attach_volume(server.id, volume.id)
    with pytest.raises(VolumeAttached):
        cloud.volumes.delete(volume.id)
    with pytest.raises(VolumeTooSmall):
        cloud.volumes.extend(volume.id, 1)
    assert cloud.volumes.get(volume.id).size_gb == 2


def test_deleting_a_server_detaches_its_volume_and_leaves_nothing(cloud: Servers) -> None:
    server = create(cloud)
    volume = cloud.volumes.create(name="v", size_gb=1)
    cloud.attach_volume(server.id, volume.id)
    (server.data_dir / "kept").write_text("still here")
    cloud.delete(server.id)
    detached = cloud.volumes.get(volume.id)
    assert (detached.status, detached.attached_to) == ("available", None)
    assert not cloud.server_dir(server.id).exists() and loops_of(volume.image) == []

    other = create(cloud)
    cloud.attach_volume(other.id, volume.id)
    assert (other.data_dir / "kept").read_text() == "still here"
    cloud.delete(other.id)
    cloud.volumes.delete(volume.id)
    assert not volume.image.exists()
    assert leftovers(cloud.settings) == []
