"""Leftovers: every object of the cloud that no row owns is found, and teardown removes
everything of the cloud (and only of this cloud)."""

from __future__ import annotations

import subprocess

from cloud_helpers import create, root

from cellar.localcloud import cleanup, network
from cellar.localcloud.cgroups import cloud_dirs
from cellar.localcloud.servers import Servers

pytestmark = root


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def test_owned_objects_are_no_leftovers(cloud: Servers) -> None:
    server = create(cloud)
    volume = cloud.volumes.create(name="v", size_gb=1)
    cloud.attach_volume(server.id, volume.id)
    assert cleanup.leftovers(cloud.settings) == []
    cloud.delete(server.id)
    cloud.volumes.delete(volume.id)
    assert cleanup.leftovers(cloud.settings) == []
    assert cloud.all() == [] and cloud.volumes.all() == []


def test_stray_objects_are_leftovers_until_teardown(cloud: Servers) -> None:
    settings, net = cloud.settings, cloud.net
    root_dir = settings.local_root
    create(cloud)  # owned: never reported
    stray_ns = net.netns("deadbeef")
    sh("ip", "netns", "add", stray_ns)
    sh("ip", "netns", "exec", stray_ns, "nft", "add", "table", "inet", "cellar")
    sleeper = subprocess.Popen(["ip", "netns", "exec", stray_ns, "sleep", "1000"])
    sh(
        "ip",
        "link",
        "add",
        net.veth("feedf00d"),
        "type",
        "veth",
        "peer",
        "name",
        net.veth("f00dfeed"),
    )
    image = root_dir / "volumes" / "stray.img"
    image.parent.mkdir(parents=True, exist_ok=True)
    sh("truncate", "-s", "1M", str(image))
    loop = subprocess.run(
        ["losetup", "--find", "--show", str(image)], capture_output=True, text=True, check=True
    ).stdout.strip()
    (root_dir / "mnt").mkdir()
    sh("mount", "-t", "tmpfs", "stray", str(root_dir / "mnt"))
    memory_dir, _ = cloud_dirs(net.bridge)
    (memory_dir / "stray").mkdir()
    (root_dir / "servers" / "stray").mkdir()

    assert sorted(cleanup.leftovers(settings)) == sorted(
        [
            f"namespace {stray_ns}",
            f"nftables table cellar in namespace {stray_ns}",
            f"veth {net.veth('feedf00d')}",
            f"veth {net.veth('f00dfeed')}",
            f"loop device {loop} on {image}",
            f"mount {root_dir / 'mnt'}",
            f"cgroup {memory_dir / 'stray'}",
            f"file {image}",
            f"file {root_dir / 'servers' / 'stray'}",
        ]
    )
    cleanup.teardown(settings)
    assert sleeper.wait(10) != 0
    assert cleanup.leftovers(settings) == [] and cleanup.infrastructure(settings) == []
    assert not network.namespace_exists(stray_ns) and not root_dir.exists()
