"""Volumes: XFS filesystems in sparse image files, attached through loop devices.

A volume is `<local_root>/volumes/<id>.img`, `size_gb` GiB, sparse. XFS because it grows
online (`xfs_growfs`, with PostgreSQL running on it): ext4's online resize needs
CAP_SYS_RESOURCE, which root lacks here. XFS needs about 300 MiB at least; volume sizes
are whole GB, so the smallest volume is already big enough.

Attaching is `losetup` and a mount at the server's data directory (chosen by the server
layer); detaching is `umount` and `losetup -d`. A volume extended while detached is grown
to its image's size when it is next attached.

Statuses: creating -> available <-> in-use, extending and back, deleting; error if an
operation failed, or if the process doing it died (its pid is in the row). A transitional
status is also the volume's claim: a second operation on it is refused, as Cinder does.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellar.config import Settings
from cellar.localcloud.cgroups import alive
from cellar.localcloud.state import CloudState, Resource
from cellar.localcloud.system import LocalCloudError, run

VOLUME = "volume"
GIB = 2**30
SETTLED = ("available", "in-use")
_BUSY = ("creating", "extending", "deleting", "attaching", "detaching")
_OCTAL = re.compile(r"\\([0-7]{3})")


class VolumeMissing(LocalCloudError):
    def __init__(self, volume_id: str) -> None:
        super().__init__(f"Volume {volume_id} does not exist.")
        self.volume_id = volume_id


class VolumeAttached(LocalCloudError):
    def __init__(self, volume_id: str, server_id: str) -> None:
        super().__init__(f"Volume {volume_id} is attached to server {server_id}.")
        self.volume_id = volume_id
        self.server_id = server_id


class VolumeTooSmall(LocalCloudError):
    def __init__(self, volume_id: str, current_gb: int, requested_gb: int) -> None:
        super().__init__(f"Volume {volume_id} is {current_gb} GB: it cannot become {requested_gb}.")
        self.volume_id = volume_id
        self.current_gb = current_gb
        self.requested_gb = requested_gb


class VolumeRefused(LocalCloudError):
    """The volume's state (or the request) refuses the operation."""


@dataclass(frozen=True)
class VolumeInfo:
    id: str
    name: str
    size_gb: int
    status: str
    attached_to: str | None
    image: Path
    mount_point: str | None


class Volumes:
    def __init__(self, settings: Settings, state: CloudState) -> None:
        self.state = state
        self.directory = settings.local_root / "volumes"

    def image(self, volume_id: str) -> Path:
        return self.directory / f"{volume_id}.img"

    def require(self, volume_id: str) -> Resource:
        row = self.state.get(VOLUME, volume_id)
        if row is None:
            raise VolumeMissing(volume_id)
        return row

    def _info(self, row: Resource) -> VolumeInfo:
        d = row.data
        return VolumeInfo(
            row.id,
            row.name,
            d["size_gb"],
            status(row),
            d.get("attached_to"),
            self.image(row.id),
            d.get("mount_point"),
        )

    def all(self) -> list[VolumeInfo]:
        return [self._info(row) for row in self.state.list(VOLUME)]

    def get(self, volume_id: str) -> VolumeInfo:
        return self._info(self.require(volume_id))

    def find(self, name: str) -> VolumeInfo | None:
        rows = self.state.find(VOLUME, name)
        return self._info(rows[0]) if rows else None

    def _set(self, row: Resource, **changes: Any) -> Resource:
        """Save the row with these data keys changed (None removes a key)."""
        data = {k: v for k, v in {**row.data, **changes}.items() if v is not None}
        return self.state.put(Resource(row.id, row.kind, row.name, row.parent, data))

    def _claim(self, row: Resource, busy: str, **changes: Any) -> Resource:
        return self._set(row, status=busy, busy_pid=os.getpid(), **changes)

    def create(self, *, name: str, size_gb: int) -> VolumeInfo:
        if size_gb < 1:
            raise VolumeRefused(f"A volume needs at least 1 GB, not {size_gb} GB.")
        row = Resource(str(uuid.uuid4()), VOLUME, name, None, {"size_gb": size_gb})
        row = self._claim(row, "creating")
        image = self.image(row.id)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(image, "xb") as f:
                f.truncate(size_gb * GIB)
            run(["mkfs.xfs", "-q", "-f", str(image)])
        except BaseException as exc:
            image.unlink(missing_ok=True)
            self._set(row, status="error", busy_pid=None, fault=str(exc))
            raise
        return self._info(self._set(row, status="available", busy_pid=None))

    def extend(self, volume_id: str, size_gb: int) -> None:
        with self.state.tx():
            row = self.require(volume_id)
            current, previous = int(row.data["size_gb"]), status(row)
            if previous not in SETTLED:
                raise VolumeRefused(f"Volume {volume_id} is {previous}: cannot extend it.")
            if size_gb <= current:
                raise VolumeTooSmall(volume_id, current, size_gb)
            row = self._claim(row, "extending")
        try:
            os.truncate(self.image(volume_id), size_gb * GIB)
            loop, mount_point = self._loop(volume_id), row.data.get("mount_point")
            if loop:  # the loop device keeps its old size until told to look again
                run(["losetup", "-c", loop])
                if mount_point and is_mount_point(Path(mount_point)):
                    run(["xfs_growfs", mount_point])
        except BaseException:
            self._set(row, status=previous, busy_pid=None)
            raise
        self._set(row, status=previous, busy_pid=None, size_gb=size_gb)

    def delete(self, volume_id: str) -> None:
        with self.state.tx():
            row = self.require(volume_id)
            holder = row.data.get("attached_to")
            if holder is not None:
                raise VolumeAttached(volume_id, holder)
            now = status(row)
            if now not in ("available", "error"):
                raise VolumeRefused(f"Volume {volume_id} is {now}: cannot delete it.")
            row = self._claim(row, "deleting")
        try:
            for loop in loops_of(self.image(volume_id)):
                run(["losetup", "-d", loop])
            self.image(volume_id).unlink(missing_ok=True)
        except BaseException as exc:
            self._set(row, status="error", busy_pid=None, fault=str(exc))
            raise
        self.state.delete(VOLUME, volume_id)

    def attach(self, volume_id: str, server_id: str, mount_point: Path) -> None:
        with self.state.tx():
            row = self.require(volume_id)
            holder = row.data.get("attached_to")
            if holder is not None:
                raise VolumeAttached(volume_id, holder)
            now = status(row)
            if now != "available":
                raise VolumeRefused(f"Volume {volume_id} is {now}: cannot attach it.")
            row = self._claim(row, "attaching", attached_to=server_id)
        try:
            self.mount(volume_id, mount_point)
        except BaseException:
            with contextlib.suppress(LocalCloudError):
                self._unmount(volume_id, mount_point)
            self._set(row, status="available", busy_pid=None, attached_to=None)
            raise
        self._set(row, status="in-use", busy_pid=None, mount_point=str(mount_point))

    def mount(self, volume_id: str, mount_point: Path) -> None:
        """Loop device and mount (both kept if already there), then grow the filesystem to
        the image: it was maybe extended while detached. Also recovers after a host restart."""
        loop = self._loop(volume_id)
        if loop is None:
            loop = run(["losetup", "--find", "--show", str(self.image(volume_id))]).stdout.strip()
        mount_point.mkdir(parents=True, exist_ok=True)
        if not is_mount_point(mount_point):
            run(["mount", "-t", "xfs", loop, str(mount_point)])
        run(["xfs_growfs", str(mount_point)])

    def detach(self, volume_id: str, server_id: str, *, force: bool = False) -> None:
        """Unmount and release the loop device; `force` (a server's delete) skips the
        status check, so that a volume left in error does not keep its server alive."""
        with self.state.tx():
            row = self.require(volume_id)
            if row.data.get("attached_to") != server_id:
                if force:
                    return
                raise VolumeRefused(f"Volume {volume_id} is not attached to server {server_id}.")
            now = status(row)
            if now != "in-use" and not force:
                raise VolumeRefused(f"Volume {volume_id} is {now}: cannot detach it.")
            row = self._claim(row, "detaching")
        try:
            mount_point = row.data.get("mount_point")
            self._unmount(volume_id, Path(mount_point) if mount_point else None)
        except BaseException:
            self._set(row, status=now, busy_pid=None)
            raise
        self._set(row, status="available", busy_pid=None, attached_to=None, mount_point=None)

    def _unmount(self, volume_id: str, mount_point: Path | None) -> None:
        # A plain umount: if the server still uses the filesystem it fails ("target is
        # busy") and the volume stays attached, rather than vanishing under a database.
        if mount_point is not None and is_mount_point(mount_point):
            run(["umount", str(mount_point)])
        for loop in loops_of(self.image(volume_id)):
            run(["losetup", "-d", loop])

    def _loop(self, volume_id: str) -> str | None:
        found = loops_of(self.image(volume_id))
        return found[0] if found else None


def status(row: Resource) -> str:
    """The volume's status; a transitional one whose process died is `error`."""
    now = str(row.data.get("status", "error"))
    if now in _BUSY and not alive(row.data.get("busy_pid")):
        return "error"
    return now


def loops() -> dict[str, str]:
    """Every loop device in use: its backing file (`(deleted)` once the file is gone)."""
    out = run(["losetup", "--list", "--json", "--output", "NAME,BACK-FILE"]).stdout
    devices = json.loads(out or "{}").get("loopdevices", [])
    return {d["name"]: d.get("back-file") or "" for d in devices}


def loops_of(image: Path) -> list[str]:
    target = os.path.realpath(image)
    return sorted(dev for dev, back in loops().items() if back.split(" (")[0] == target)


def mounts() -> list[Path]:
    """Every mount point of this process's mount namespace."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        raw = line.split()[4]  # a space, tab, newline or backslash is an octal escape
        points.append(Path(_OCTAL.sub(lambda m: chr(int(m.group(1), 8)), raw)))
    return points


def is_mount_point(path: Path) -> bool:
    # Not os.path.ismount: a bind mount of a directory on its own filesystem has the
    # same device as its parent, and would not count.
    return Path(os.path.realpath(path)) in mounts()


def mounts_under(root: Path) -> list[Path]:
    """Mount points at or below `root`, deepest first (the order to unmount them)."""
    real = Path(os.path.realpath(root))
    found = [p for p in mounts() if p == real or real in p.parents]
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def share(directory: Path) -> None:
    """Make `directory` a shared mount (a bind mount on itself), once.

    The host's `/` is private (no systemd here), and `ip netns exec` gives every process
    it starts a copy of the mount table as it is then: a volume mounted later at a server's
    data directory would never appear inside its guest agent. Under a shared mount, the
    copies that `ip netns exec` makes are its slaves, and later mounts propagate into them.
    """
    directory.mkdir(parents=True, exist_ok=True)
    if not is_mount_point(directory):
        run(["mount", "--bind", str(directory), str(directory)])
        run(["mount", "--make-shared", str(directory)])
