"""Finding and removing what the local cloud left behind.

`leftovers` lists every kernel object and file of the cloud that no row of its state
owns: what a crash, a bug or a killed test leaves. `infrastructure` lists the cloud's own
objects (bridge, host firewall table, shared servers mount, cgroup parents), which exist
as long as the cloud does. `teardown` removes everything of the cloud, rows and files
included, for tests and for an operator; stop `cellar serve` first.

Only objects named after this cloud's bridge are considered: another cloud on the same
host (a test's, or `cellar serve`'s) is never touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import time
from pathlib import Path

from cellar.config import Settings
from cellar.localcloud import firewall, network
from cellar.localcloud.cgroups import cloud_dirs
from cellar.localcloud.network import SERVER, Network
from cellar.localcloud.servers import Servers, state_path
from cellar.localcloud.state import CloudState, Resource
from cellar.localcloud.system import LocalCloudError, require_root, run
from cellar.localcloud.volumes import VOLUME, loops, mounts_under


def _rows(settings: Settings, kind: str) -> list[Resource]:
    # Never create a state file just to look: a cloud that never ran has no rows.
    if not state_path(settings).exists():
        return []
    return CloudState(state_path(settings)).list(kind)


def _real(path: Path | str) -> Path:
    return Path(os.path.realpath(path))


def _our_loops(settings: Settings) -> dict[str, Path]:
    """Loop devices backed by an image of this cloud: device -> image."""
    images = _real(settings.local_root / "volumes")
    found = {dev: Path(back.split(" (")[0]) for dev, back in loops().items()}
    return {dev: image for dev, image in found.items() if image.parent == images}


def _our_veths(net: Network) -> list[str]:
    """Veths named like this cloud's, or plugged into its bridge."""
    pattern = re.compile(re.escape(net.veth_prefix) + "[0-9a-f]{8}")
    return sorted(
        name
        for name, master in network.veths().items()
        if pattern.fullmatch(name) or master == net.bridge
    )


def _cgroup_parents(net: Network, servers: list[Resource]) -> list[Path]:
    """Where this cloud's server cgroups are: under this process's cgroups, and wherever
    the rows say (a server made by a process that ran in another cgroup)."""
    parents = set(cloud_dirs(net.bridge))
    parents |= {Path(p).parent for row in servers for p in row.data["cgroups"].values()}
    return sorted(parents)


def leftovers(settings: Settings) -> list[str]:
    """Every kernel object or file of this cloud that no row owns, described."""
    net = Network.from_settings(settings)
    servers, volumes = _rows(settings, SERVER), _rows(settings, VOLUME)
    found: list[str] = []

    owned_ns = {row.data["netns"] for row in servers}
    for ns in network.namespaces(net):
        if ns not in owned_ns:
            found.append(f"namespace {ns}")
            found += [f"nftables table {t} in namespace {ns}" for t in firewall.tables(ns)]

    owned_veths = {net.veth(row.id) for row in servers}
    found += [f"veth {name}" for name in _our_veths(net) if name not in owned_veths]

    attached = [row for row in volumes if row.data.get("attached_to")]
    images = {_real(settings.local_root / "volumes" / f"{row.id}.img") for row in attached}
    for dev, image in _our_loops(settings).items():
        if image not in images:
            found.append(f"loop device {dev} on {image}")

    owned_mounts = {_real(settings.local_root / "servers")}
    owned_mounts |= {_real(r.data["mount_point"]) for r in attached if "mount_point" in r.data}
    found += [f"mount {p}" for p in mounts_under(settings.local_root) if p not in owned_mounts]

    owned_cgroups = {Path(p) for row in servers for p in row.data["cgroups"].values()}
    for parent in _cgroup_parents(net, servers):
        if parent.is_dir():
            found += [
                f"cgroup {child}"
                for child in sorted(parent.iterdir())
                if child.is_dir() and child not in owned_cgroups
            ]

    files = [(settings.local_root / "volumes", {f"{row.id}.img" for row in volumes})]
    files.append((settings.local_root / "servers", {row.id for row in servers}))
    for directory, owned in files:
        if directory.is_dir():
            found += [f"file {p}" for p in sorted(directory.iterdir()) if p.name not in owned]
    return found


def infrastructure(settings: Settings) -> list[str]:
    """The cloud's own objects that exist now (none after `teardown`)."""
    net = Network.from_settings(settings)
    found = [f"bridge {net.bridge}"] if network.link_exists(net.bridge) else []
    if firewall.host_table(net) in firewall.tables():
        found.append(f"nftables table inet {firewall.host_table(net)}")
    shared = _real(settings.local_root / "servers")
    found += [f"mount {p}" for p in mounts_under(settings.local_root) if p == shared]
    found += [f"cgroup {d}" for d in cloud_dirs(net.bridge) if d.exists()]
    if settings.local_root.exists():
        found.append(f"directory {settings.local_root}")
    return found


def teardown(settings: Settings) -> None:
    """Remove everything of this cloud: servers, volumes, kernel objects, files, state."""
    require_root()
    net = Network.from_settings(settings)
    cgroup_parents = _cgroup_parents(net, _rows(settings, SERVER))
    if state_path(settings).exists():
        servers = Servers(settings, CloudState(state_path(settings)), grace_s=1.0)
        # The orderly way first: delete detaches volumes and releases everything.
        for row in servers.state.list(SERVER):
            with contextlib.suppress(LocalCloudError, OSError):
                servers.delete(row.id)
        for row in servers.state.list(VOLUME):
            with contextlib.suppress(LocalCloudError, OSError):
                servers.volumes.delete(row.id)

    # The backup repository's server (the repository's files go with the cloud's).
    from cellar.localcloud.backups import BackupRepository

    with contextlib.suppress(LocalCloudError, OSError, KeyError):
        BackupRepository(settings).stop()

    # Then by force, whatever is left.
    for parent in cgroup_parents:
        for child in sorted(parent.iterdir()) if parent.is_dir() else []:
            if child.is_dir():
                _kill_cgroup(child)
    for ns in network.namespaces(net):
        pids = run(["ip", "netns", "pids", ns], check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        network.remove_namespace(ns)
    for veth in _our_veths(net):
        run(["ip", "link", "del", veth], check=False)
    for mount_point in mounts_under(settings.local_root):
        if run(["umount", str(mount_point)], check=False).returncode != 0:
            run(["umount", "-l", str(mount_point)])  # busy: detach it now, free it later
    for dev in _our_loops(settings):
        run(["losetup", "-d", dev], check=False)
    firewall.remove_host_table(net)
    network.remove_bridge(net)
    for parent in cgroup_parents:
        if parent.exists():
            parent.rmdir()
    if mounts_under(settings.local_root):  # never delete files through a mount
        raise LocalCloudError(f"Mounts are left under {settings.local_root}.")
    shutil.rmtree(settings.local_root, ignore_errors=True)


def _kill_cgroup(directory: Path) -> None:
    """Kill every process of a cgroup, then remove it."""
    procs = directory / "cgroup.procs"
    for _ in range(250):
        pids = procs.read_text().split()
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.02)
    directory.rmdir()
