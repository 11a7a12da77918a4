"""Servers: a network namespace on the bridge, memory and CPU cgroups sized by the
flavor, a config drive, and the guest agent running inside.

Layout of a server on disk, under `<local_root>/servers/<id>/`:

- `config/meta_data.json`: server_id, name, address, gateway, data_dir, flavor, metadata;
- `config/user_data.json`: the `user_data` mapping given at create;
- `data/`: the data directory, where the server's volume is mounted (one volume a server);
- `agent.log`: the guest agent's stdout and stderr.

The agent is started by `agent_command(config dir) -> argv` (by default `cellar
guest-agent`), inside the server's cgroups and namespace, detached. Reboot kills every
process of the server's cgroups and starts the agent again; resize changes the limits.
An agent that dies is started again (`revive_agents`, which `cellar serve` calls every
`AGENT_CHECK_S`), as a server's init would.

Lifecycle: BUILD -> ACTIVE (ERROR if the build fails: what was made is removed first);
ACTIVE -> REBOOT -> ACTIVE; ACTIVE -> RESIZE -> VERIFY_RESIZE -> ACTIVE (confirm or
revert). Every change of one server holds its lock (a file lock: several processes run
the cloud); reads take no lock. The row is the truth, and any process sees the same: a
transitional status whose process died is ERROR, and a server whose namespace is gone
(the host restarted) is SHUTOFF until a reboot brings it back.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cellar.config import Settings
from cellar.domain.specs import FlavorSpec
from cellar.guest.protocol import META_DATA, USER_DATA
from cellar.localcloud import firewall, network
from cellar.localcloud.cgroups import ServerCgroups, alive
from cellar.localcloud.firewall import SecurityGroups
from cellar.localcloud.network import SERVER, Network, file_lock, namespace_exists
from cellar.localcloud.state import CloudState, Resource
from cellar.localcloud.system import LocalCloudError, missing_tools, require_root
from cellar.localcloud.volumes import VolumeAttached, Volumes, mounts_under, share

AgentCommand = Callable[[Path], Sequence[str]]
# How often `cellar serve` looks for dead agents to start again.
AGENT_CHECK_S = 1.0
_TRANSITIONAL = ("BUILD", "REBOOT", "RESIZE")
_ATTACHABLE = ("ACTIVE", "SHUTOFF", "VERIFY_RESIZE")
_RUNNING = ("ACTIVE", "VERIFY_RESIZE")


def state_path(settings: Settings) -> Path:
    """The local cloud's state file (shared with its DNS server)."""
    return settings.local_root / "state.sqlite"


def guest_agent_command(config_dir: Path) -> list[str]:
    # `cellar.guest` rather than `cellar guest-agent`: the command group imports the whole
    # control plane first (0.8 s here), which every boot and reboot would pay.
    return [sys.executable, "-m", "cellar.guest", "--config-drive", str(config_dir)]


class ServerMissing(LocalCloudError):
    def __init__(self, server_id: str) -> None:
        super().__init__(f"Server {server_id} does not exist.")
        self.server_id = server_id


class ServerStateRefused(LocalCloudError):
    def __init__(self, server_id: str, state: str, operation: str) -> None:
        super().__init__(f"Server {server_id} is {state}: cannot {operation}.")
        self.server_id = server_id
        self.state = state
        self.operation = operation


class ServerRefused(LocalCloudError):
    """The request itself is refused (not the server's state)."""


@dataclass(frozen=True)
class ServerInfo:
    id: str
    name: str
    status: str
    flavor: FlavorSpec
    image: str
    address: str | None
    volume_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    metadata: Mapping[str, str]
    netns: str
    data_dir: Path
    fault: str | None
    boots: int = 0  # how many times it booted (its agent started on a fresh boot)


def status(row: Resource) -> str:
    now = str(row.data["status"])
    if now in _TRANSITIONAL and not alive(row.data.get("busy_pid")):
        return "ERROR"
    if now in ("ACTIVE", "VERIFY_RESIZE") and not namespace_exists(row.data["netns"]):
        return "SHUTOFF"
    return now


class Servers:
    def __init__(
        self,
        settings: Settings,
        state: CloudState,
        *,
        agent_command: AgentCommand = guest_agent_command,
        grace_s: float = 5.0,
    ) -> None:
        self.settings = settings
        self.state = state
        self.agent_command = agent_command
        self.grace_s = grace_s
        self.net = Network.from_settings(settings)
        self.volumes = Volumes(settings, state)
        self.groups = SecurityGroups(settings, state)
        self.directory = settings.local_root / "servers"

    def server_dir(self, server_id: str) -> Path:
        return self.directory / server_id

    def config_dir(self, server_id: str) -> Path:
        return self.server_dir(server_id) / "config"

    def data_dir(self, server_id: str) -> Path:
        return self.server_dir(server_id) / "data"

    def log_path(self, server_id: str) -> Path:
        return self.server_dir(server_id) / "agent.log"

    def start(self) -> None:
        """The cloud's own objects: bridge, host firewall, shared servers directory."""
        require_root()
        missing = missing_tools()
        if missing:
            raise LocalCloudError(f"The local cloud needs {', '.join(missing)}.")
        # Locked: two processes starting at once would stack two bind mounts.
        with file_lock(self.settings.local_root / "locks" / "start.lock"):
            network.ensure_bridge(self.net)
            firewall.ensure_host_table(self.net, self.settings.api_port)
            share(self.directory)

    def require(self, server_id: str) -> Resource:
        row = self.state.get(SERVER, server_id)
        if row is None:
            raise ServerMissing(server_id)
        return row

    def all(self) -> list[ServerInfo]:
        return [self._info(row) for row in self.state.list(SERVER)]

    def get(self, server_id: str) -> ServerInfo:
        return self._info(self.require(server_id))

    def find(self, name: str) -> ServerInfo | None:
        rows = self.state.find(SERVER, name)
        return self._info(rows[0]) if rows else None

    def pids(self, server_id: str) -> list[int]:
        """The processes running in the server."""
        return ServerCgroups.from_data(self.require(server_id).data["cgroups"]).pids()

    def create(
        self,
        *,
        name: str,
        flavor: FlavorSpec,
        image: str,
        security_group_ids: Sequence[str] = (),
        user_data: Mapping[str, str] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ServerInfo:
        server_id = self._new_id()
        with self._lock(server_id):
            with self.state.tx():  # with the group check: no group vanishes meanwhile
                for group_id in security_group_ids:
                    self.groups.require(group_id)
                data = {
                    "status": "BUILD",
                    "busy_pid": os.getpid(),
                    "flavor": asdict(flavor),
                    "image": image,
                    "metadata": dict(metadata or {}),
                    "user_data": dict(user_data or {}),
                    "security_group_ids": list(security_group_ids),
                    "volume_ids": [],
                    "address": self.state.allocate_address(str(self.net.cidr), server_id),
                    "netns": self.net.netns(server_id),
                    "data_dir": str(self.data_dir(server_id)),
                    "cgroups": ServerCgroups.new(self.net.bridge, server_id).to_data(),
                }
                row = self.state.put(Resource(server_id, SERVER, name, None, data))
            try:
                row = self._boot(row)
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    self._dismantle(row)
                self.state.release_address(server_id)
                # Like Nova's: an ERROR server keeps its name and flavor, and holds no
                # address and no security group (which stays deletable).
                self._set(
                    row,
                    status="ERROR",
                    busy_pid=None,
                    fault=str(exc),
                    address=None,
                    security_group_ids=[],
                )
                raise
            row = self._set(row, status="ACTIVE", busy_pid=None)
        return self._info(row)

    def delete(self, server_id: str) -> None:
        """Kill, detach the volumes (they become available), remove every kernel object
        and file, release the address. Any state; an error leaves the row to retry."""
        with self._lock(server_id):
            self._dismantle(self.require(server_id))
            with self.state.tx():
                self.state.release_address(server_id)
                self.state.delete(SERVER, server_id)
        self._lock_path(server_id).unlink(missing_ok=True)

    def reboot(self, server_id: str) -> None:
        """Restart what runs inside; a SHUTOFF server (namespace gone) is rebuilt first."""
        with self._lock(server_id):
            row = self._require_state(server_id, ("ACTIVE", "SHUTOFF"), "reboot")
            row = self._set(row, status="REBOOT", busy_pid=os.getpid())
            try:
                ServerCgroups.from_data(row.data["cgroups"]).kill_all(self.grace_s)
                row = self._boot(row)
            except BaseException as exc:
                self._set(row, status="ERROR", busy_pid=None, fault=str(exc))
                raise
            self._set(row, status="ACTIVE", busy_pid=None, fault=None)

    def resize(self, server_id: str, flavor: FlavorSpec) -> None:
        with self._lock(server_id):
            row = self._require_state(server_id, ("ACTIVE",), "resize")
            old = row.data["flavor"]
            if flavor.id == old["id"]:
                raise ServerRefused(f"Server {server_id} already has flavor {flavor.id}.")
            row = self._set(row, status="RESIZE", busy_pid=os.getpid())
            try:
                self._apply_flavor(_changed(row, flavor=asdict(flavor)))
            except BaseException:
                with contextlib.suppress(Exception):
                    self._apply_flavor(row)
                self._set(row, status="ACTIVE", busy_pid=None)
                raise
            self._set(
                row, status="VERIFY_RESIZE", busy_pid=None, flavor=asdict(flavor), old_flavor=old
            )

    def confirm_resize(self, server_id: str) -> None:
        with self._lock(server_id):
            row = self._require_state(server_id, ("VERIFY_RESIZE",), "confirm a resize")
            self._set(row, status="ACTIVE", old_flavor=None)

    def revert_resize(self, server_id: str) -> None:
        with self._lock(server_id):
            row = self._require_state(server_id, ("VERIFY_RESIZE",), "revert a resize")
            reverted = _changed(
                row, status="ACTIVE", flavor=row.data["old_flavor"], old_flavor=None
            )
            self._apply_flavor(reverted)  # if this fails, the server stays VERIFY_RESIZE
            self.state.put(reverted)

    def attach_volume(self, server_id: str, volume_id: str) -> None:
        with self._lock(server_id):
            row = self._require_state(server_id, _ATTACHABLE, "attach a volume")
            holder = self.volumes.require(volume_id).data.get("attached_to")
            if holder is not None:
                raise VolumeAttached(volume_id, holder)
            if row.data["volume_ids"]:
                raise ServerRefused(
                    f"Server {server_id} has volume {row.data['volume_ids'][0]} at its data "
                    "directory already: a local server takes one volume."
                )
            self.volumes.attach(volume_id, server_id, self.data_dir(server_id))
            self._set(row, volume_ids=[volume_id])

    def detach_volume(self, server_id: str, volume_id: str) -> None:
        with self._lock(server_id):
            row = self._require_state(server_id, _ATTACHABLE, "detach a volume")
            self.volumes.detach(volume_id, server_id)
            self._set(row, volume_ids=[v for v in row.data["volume_ids"] if v != volume_id])

    def _boot(self, row: Resource) -> Resource:
        """Make (or repair) everything of the server, then start its agent. Idempotent."""
        if not network.link_exists(self.net.bridge):
            self.start()
        network.plug(self.net, row.id, row.data["address"])
        self.groups.apply(row.id)  # the rules are in place before anything listens
        ServerCgroups.from_data(row.data["cgroups"]).create()
        self._apply_flavor(row)
        self.data_dir(row.id).mkdir(parents=True, exist_ok=True)
        for volume_id in row.data["volume_ids"]:
            self.volumes.mount(volume_id, self.data_dir(row.id))
        argv = list(self.agent_command(self.config_dir(row.id)))
        cgroups = ServerCgroups.from_data(row.data["cgroups"])
        pid = cgroups.spawn(row.data["netns"], argv, self.log_path(row.id))
        return self._set(row, agent_pid=pid, boots=int(row.data.get("boots", 0)) + 1)

    def revive_agents(self) -> list[str]:
        """Start again the agent of every running server whose agent died while the
        server lives on (other processes of it run), as a server's init would (systemd's
        `Restart=always`); returns those servers' ids. A server none of whose processes
        is left has died as a whole (a crashed machine): nothing restarts it."""
        revived = []
        for row in self.state.list(SERVER):
            if status(row) not in _RUNNING or not _agent_died_alone(row):
                continue
            with self._lock(row.id):
                found = self.state.get(SERVER, row.id)
                if found is None or status(found) not in _RUNNING or not _agent_died_alone(found):
                    continue
                argv = list(self.agent_command(self.config_dir(found.id)))
                cgroups = ServerCgroups.from_data(found.data["cgroups"])
                pid = cgroups.spawn(found.data["netns"], argv, self.log_path(found.id))
                self._set(found, agent_pid=pid)
                revived.append(found.id)
        return revived

    def _apply_flavor(self, row: Resource) -> None:
        """The cgroup limits and the config drive for the row's flavor."""
        flavor = row.data["flavor"]
        ServerCgroups.from_data(row.data["cgroups"]).set_limits(flavor["ram_mb"], flavor["vcpus"])
        meta = {
            "server_id": row.id,
            "name": row.name,
            "address": row.data["address"],
            "gateway": self.net.gateway,
            "data_dir": row.data["data_dir"],
            "flavor": flavor,
            "metadata": row.data["metadata"],
        }
        config = self.config_dir(row.id)
        _write_json(config / META_DATA, meta)
        _write_json(config / USER_DATA, row.data["user_data"])

    def _dismantle(self, row: Resource) -> None:
        cgroups = ServerCgroups.from_data(row.data["cgroups"])
        cgroups.kill_all(self.grace_s)  # first: a running database keeps its volume busy
        for volume_id in row.data["volume_ids"]:
            with contextlib.suppress(LocalCloudError):  # a volume deleted meanwhile
                self.volumes.require(volume_id)
                self.volumes.detach(volume_id, row.id, force=True)
        network.unplug(self.net, row.id)
        cgroups.remove()
        server_dir = self.server_dir(row.id)
        mounted = mounts_under(server_dir)
        if mounted:  # never delete files through a mount: they would be a volume's
            raise LocalCloudError(f"{', '.join(map(str, mounted))} still mounted.")
        shutil.rmtree(server_dir, ignore_errors=True)

    def _require_state(self, server_id: str, allowed: Sequence[str], operation: str) -> Resource:
        row = self.require(server_id)
        now = status(row)
        if now not in allowed:
            raise ServerStateRefused(server_id, now, operation)
        return row

    def _set(self, row: Resource, **changes: Any) -> Resource:
        """Save the row with these data keys changed (None removes a key)."""
        return self.state.put(_changed(row, **changes))

    def _new_id(self) -> str:
        """A fresh id whose kernel names (from its first 8 characters) are free."""
        taken = {row.id[:8] for row in self.state.list(SERVER)}
        while True:
            server_id = str(uuid.uuid4())
            if server_id[:8] not in taken and not namespace_exists(self.net.netns(server_id)):
                return server_id

    def _lock_path(self, server_id: str) -> Path:
        return self.settings.local_root / "locks" / f"{server_id}.lock"

    def _lock(self, server_id: str) -> contextlib.AbstractContextManager[None]:
        return file_lock(self._lock_path(server_id))

    def _info(self, row: Resource) -> ServerInfo:
        d = row.data
        return ServerInfo(
            id=row.id,
            name=row.name,
            status=status(row),
            flavor=FlavorSpec(**d["flavor"]),
            image=d["image"],
            address=d.get("address"),
            volume_ids=tuple(d["volume_ids"]),
            security_group_ids=tuple(d["security_group_ids"]),
            metadata=dict(d["metadata"]),
            netns=d["netns"],
            data_dir=Path(d["data_dir"]),
            fault=d.get("fault"),
            boots=int(d.get("boots", 0)),
        )


def _agent_died_alone(row: Resource) -> bool:
    """Whether the server's agent is gone from its cgroups while other processes of the
    server are still there."""
    pid = row.data.get("agent_pid")
    if pid is None:
        return False
    pids = ServerCgroups.from_data(row.data["cgroups"]).pids()
    return pid not in pids and bool(pids)


def _changed(row: Resource, **changes: Any) -> Resource:
    """The row with these data keys changed (None removes a key), not saved."""
    data = {k: v for k, v in {**row.data, **changes}.items() if v is not None}
    return Resource(row.id, row.kind, row.name, row.parent, data)


def _write_json(path: Path, value: object) -> None:
    """Write atomically (rename), readable by root only: user data may hold secrets."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True)
    os.replace(tmp, path)
