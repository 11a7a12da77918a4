"""The guest driver of the local cloud: HTTP to the agent inside each server.

The agent listens on `<server address>:8780` (`cellar.guest.http`); the address is the
local cloud's (its state file, server rows with `data["address"]`). Each request carries
the instance's secret (`cellar.guest.protocol`), which `user_data` puts on the config
drive with the control plane's address as the servers see it (the bridge's).

The control plane's own knowledge of a guest is one file per prepared instance under
`<state_dir>/guests/` (the server it was prepared on), touched at every answer:

- never prepared (or forgotten): NEW, age None, without asking anyone;
- the agent answers: its status, age 0;
- the agent cannot be reached (connection refused, no route: the server is booting or
  rebooting, or the agent is dead): SHUTDOWN, age = seconds since the last answer. The
  datastore is not serving as far as anyone can tell; the heartbeat rule of the API
  (`db.heartbeats`) turns a long silence into FAILED_TIMEOUT_GUESTAGENT;
- the agent is reached but does not answer properly (timeout, 5xx): ServiceUnavailable.

`prepare` and `start_db` (what follows a boot) wait up to `boot_wait_s` for an agent that
cannot be reached yet (it is still starting after the server booted), other commands a
few seconds; then ServiceUnavailable (the task manager retries it); the agent's refusals
(409: nothing prepared; 500: the command failed) are GuestError.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from cellar.config import Settings
from cellar.domain.accounts import DatabaseInfo, UserInfo
from cellar.domain.backups import RepositoryAccess, RestoreTarget
from cellar.domain.replication import ReplicaLag, ReplicationSpec, ReplicationStatus, Role
from cellar.domain.specs import DatabaseSpec, InstanceSpec, UserSpec, resource_name
from cellar.domain.status import ServiceStatus
from cellar.drivers.base import ServiceUnavailable
from cellar.drivers.guest.base import (
    GuestBadValue,
    GuestDriver,
    GuestError,
    GuestObjectExists,
    GuestObjectNotFound,
    GuestRefusal,
    GuestStatus,
)
from cellar.guest.protocol import (
    AGENT_PORT,
    KEY_FILE,
    SECRET_HEADER,
    instance_secret,
    load_or_create_key,
)
from cellar.localcloud.state import CloudState, Resource

SERVER = "server"
# The agent's refusals of user and database commands, by the answer's `reason`.
_REFUSALS: dict[Any, type[GuestRefusal]] = {
    "exists": GuestObjectExists,
    "not_found": GuestObjectNotFound,
    "invalid": GuestBadValue,
}
DEFAULT_PORT = 5432


def _unreachable(exc: httpx.HTTPError) -> bool:
    """Nobody listens at the agent's address (yet): refused, or no route to it."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)


class LocalGuestDriver(GuestDriver):
    name = "local-guest"

    def __init__(
        self,
        settings: Settings,
        *,
        state: CloudState | None = None,
        agent_port: int = AGENT_PORT,
        boot_wait_s: float = 60.0,
        command_timeout_s: float = 150.0,
    ) -> None:
        self.settings = settings
        self._state = state
        self.agent_port = agent_port
        self.boot_wait_s = boot_wait_s
        self.command_timeout_s = command_timeout_s
        self.guests_dir = Path(settings.state_dir) / "guests"
        # One client for the driver's life: a new httpx client (or `httpx.request`) builds a
        # TLS context and loads the CA bundle, ~44 ms of CPU, even for plain http; the
        # task manager polls agents every 20 ms while they prepare. No kept-alive
        # connections: a rebooted server's agent is a new process, and a connection to a
        # server whose namespace went away would hang instead of being refused.
        self._http = httpx.Client(
            verify=False, trust_env=False, limits=httpx.Limits(max_keepalive_connections=0)
        )

    @property
    def state(self) -> CloudState:
        if self._state is None:
            self._state = CloudState(self.settings.local_root / "state.sqlite")
        return self._state

    # What the control plane holds.

    def _key(self) -> bytes:
        return load_or_create_key(Path(self.settings.state_dir) / KEY_FILE)

    def secret(self, instance_id: str) -> str:
        return instance_secret(self._key(), instance_id)

    def replication_password(self, group_id: str) -> str:
        """HMAC-SHA256 of the group id under the guest key, as the instance secrets are:
        the same on every call, stored nowhere, unknowable without the key."""
        return hmac.new(self._key(), f"replication:{group_id}".encode(), hashlib.sha256).hexdigest()

    @property
    def control_plane_url(self) -> str:
        """The API on the bridge's address (`cellar serve --backend local` listens there)."""
        gateway = next(ipaddress.IPv4Network(self.settings.local_cidr).hosts())
        return f"http://{gateway}:{self.settings.api_port}"

    def user_data(self, instance_id: str) -> dict[str, str]:
        return {
            "instance_id": instance_id,
            "control_plane_url": self.control_plane_url,
            "secret": self.secret(instance_id),
        }

    def _record(self, instance_id: str) -> Path:
        return self.guests_dir / f"{instance_id}.json"

    def _prepared_on(self, instance_id: str) -> str | None:
        """The server the instance's guest was prepared on, or None if it never was."""
        try:
            return str(json.loads(self._record(instance_id).read_text())["server_id"])
        except (OSError, ValueError, KeyError):
            return None

    def _server(self, instance_id: str, server_id: str | None) -> Resource | None:
        if server_id is not None:
            found = self.state.get(SERVER, server_id)
            if found is not None:
                return found
        named = self.state.find(SERVER, resource_name(instance_id))
        return named[0] if named else None

    # HTTP.

    def _request(
        self, server: Resource, instance_id: str, method: str, path: str, **kwargs: Any
    ) -> httpx.Response:
        url = f"http://{server.data['address']}:{self.agent_port}{path}"
        headers = {SECRET_HEADER: self.secret(instance_id)}
        timeout = httpx.Timeout(kwargs.pop("timeout", self.command_timeout_s), connect=3.0)
        return self._http.request(method, url, headers=headers, timeout=timeout, **kwargs)

    def _command(
        self,
        instance_id: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        wait_s: float = 5.0,
        method: str = "POST",
    ) -> dict[str, Any]:
        server_id = self._prepared_on(instance_id)
        if server_id is None:
            raise GuestError(f"Instance {instance_id} has no guest: it was never prepared.")
        server = self._server(instance_id, server_id)
        return self._send(instance_id, server, path, body, wait_s, method=method)

    def _send(
        self,
        instance_id: str,
        server: Resource | None,
        path: str,
        body: dict[str, Any] | None,
        wait_s: float,
        *,
        method: str = "POST",
    ) -> dict[str, Any]:
        if server is None or "address" not in server.data:
            raise GuestError(f"The guest of instance {instance_id} is unreachable: no server.")
        deadline = time.monotonic() + wait_s
        content = {"json": body or {}} if method == "POST" else {}
        while True:
            try:
                response = self._request(server, instance_id, method, path, **content)
                break
            except httpx.HTTPError as exc:
                if not _unreachable(exc) or time.monotonic() >= deadline:
                    raise ServiceUnavailable(
                        f"The guest agent of instance {instance_id} at "
                        f"{server.data['address']} did not answer {path}: {exc}"
                    ) from exc
                time.sleep(0.02)  # the agent is starting: it listens within ~0.2 s
        return self._answer(instance_id, path, response)

    def _answer(self, instance_id: str, path: str, response: httpx.Response) -> dict[str, Any]:
        try:
            payload: dict[str, Any] = response.json()
        except ValueError:
            payload = {}
        message = payload.get("error", response.text[:200])
        if response.status_code in (502, 503, 504):
            raise ServiceUnavailable(f"The guest of instance {instance_id}: {path}: {message}")
        if response.status_code >= 400:
            full = (
                f"The guest of instance {instance_id} refused {path} "
                f"(HTTP {response.status_code}): {message}"
            )
            refusal = _REFUSALS.get(payload.get("reason"))
            if refusal is not None:
                raise refusal(full, str(message))
            raise GuestError(full)
        self._touch(instance_id)
        return payload

    def _touch(self, instance_id: str) -> None:
        """Record an answer from the guest (the record's mtime is its last answer)."""
        with contextlib.suppress(OSError):
            os.utime(self._record(instance_id))

    # The GuestDriver interface.

    def prepare(
        self,
        instance_id: str,
        *,
        server_id: str,
        spec: InstanceSpec,
        replication: ReplicationSpec | None = None,
    ) -> None:
        self._prepare(instance_id, server_id, spec, replication, {})

    def _prepare(
        self,
        instance_id: str,
        server_id: str,
        spec: InstanceSpec,
        replication: ReplicationSpec | None,
        extra: dict[str, Any],
    ) -> None:
        server = self.state.get(SERVER, server_id)
        if server is None:
            raise GuestError(f"Cannot prepare instance {instance_id}: no server {server_id}.")
        status = server.data.get("status", "ACTIVE")
        if status != "ACTIVE":
            raise GuestError(
                f"Cannot prepare instance {instance_id}: server {server_id} is {status}."
            )
        self.guests_dir.mkdir(parents=True, exist_ok=True)
        record = self._record(instance_id)
        record.write_text(json.dumps({"server_id": server_id}))
        body = {
            "datastore": spec.datastore,
            "version": spec.datastore_version,
            "ram_mb": spec.flavor.ram_mb,
            "port": spec.ports[0] if spec.ports else DEFAULT_PORT,
            "databases": [
                {"name": d.name, "character_set": d.character_set, "collate": d.collate}
                for d in spec.databases
            ],
            "users": [
                {"name": u.name, "password": u.password, "databases": list(u.databases)}
                for u in spec.users
            ],
        }
        if replication is not None:
            body["replication"] = _replication_body(replication)
        body.update(extra)
        self._send(instance_id, server, "/prepare", body, self.boot_wait_s)

    def prepare_with_repository(
        self,
        instance_id: str,
        *,
        server_id: str,
        spec: InstanceSpec,
        repository: RepositoryAccess,
        restore: RestoreTarget | None = None,
        replication: ReplicationSpec | None = None,
    ) -> None:
        """`prepare`'s body with `repository` (and `restore`) for the agent."""
        extra: dict[str, Any] = {"repository": _repository_body(repository)}
        if restore is not None:
            extra["restore"] = {
                "stanza": restore.stanza,
                "label": restore.label,
                "target_time": None
                if restore.target_time is None
                else restore.target_time.isoformat(),
            }
        self._prepare(instance_id, server_id, spec, replication, extra)

    def status(self, instance_id: str) -> GuestStatus:
        server_id = self._prepared_on(instance_id)
        if server_id is None:
            return GuestStatus(ServiceStatus.NEW, None)
        server = self._server(instance_id, server_id)
        if server is not None and "address" in server.data:
            try:
                response = self._request(server, instance_id, "GET", "/status", timeout=10.0)
            except httpx.HTTPError as exc:
                if not _unreachable(exc):
                    raise ServiceUnavailable(
                        f"The guest agent of instance {instance_id} did not answer: {exc}"
                    ) from exc
            else:
                payload = self._answer(instance_id, "/status", response)
                return GuestStatus(
                    ServiceStatus(payload["service_status"]), 0.0, payload.get("error")
                )
        try:
            age: float | None = max(0.0, time.time() - self._record(instance_id).stat().st_mtime)
        except OSError:
            age = None
        return GuestStatus(ServiceStatus.SHUTDOWN, age)

    def enable_root(self, instance_id: str, *, password: str | None = None) -> tuple[str, str]:
        answer = self._command(instance_id, "/root", {"password": password} if password else None)
        return str(answer["name"]), str(answer["password"])

    def stop_db(self, instance_id: str) -> None:
        self._command(instance_id, "/stop")

    def start_db(self, instance_id: str) -> None:
        self._command(instance_id, "/start", wait_s=self.boot_wait_s)

    def restart(self, instance_id: str) -> None:
        self._command(instance_id, "/restart")

    def resize_fs(self, instance_id: str) -> None:
        """Nothing to grow inside (the cloud's volume extend runs `xfs_growfs`): the agent
        reports the filesystem's size, which must have grown."""
        self._command(instance_id, "/resize_fs")

    def filesystem(self, instance_id: str) -> dict[str, int]:
        """Size and free bytes of the instance's data filesystem, as its agent sees it."""
        payload = self._command(instance_id, "/resize_fs")
        return {k: int(payload[k]) for k in ("size_bytes", "free_bytes")}

    def root_password(self, instance_id: str) -> str | None:
        """The root password the prepare made, once: None if it was read already."""
        server_id = self._prepared_on(instance_id)
        server = self._server(instance_id, server_id) if server_id else None
        if server is None or "address" not in server.data:
            raise GuestError(f"Instance {instance_id} has no reachable guest.")
        try:
            response = self._request(server, instance_id, "GET", "/root-password", timeout=10.0)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"The guest of instance {instance_id}: {exc}") from exc
        if response.status_code == 404:
            return None
        return str(self._answer(instance_id, "/root-password", response)["password"])

    # Users and databases: the agent's /databases and /users (`cellar.guest.http`).

    def list_databases(self, instance_id: str) -> list[DatabaseInfo]:
        answer = self._command(instance_id, "/databases", method="GET")
        return [
            DatabaseInfo(str(d["name"]), d.get("character_set"), d.get("collate"))
            for d in answer["databases"]
        ]

    def create_databases(self, instance_id: str, databases: Sequence[DatabaseSpec]) -> None:
        body = [
            {"name": d.name, "character_set": d.character_set, "collate": d.collate}
            for d in databases
        ]
        self._command(instance_id, "/databases", {"databases": body})

    def delete_database(self, instance_id: str, name: str) -> None:
        self._command(instance_id, "/databases/delete", {"name": name})

    def list_users(self, instance_id: str) -> list[UserInfo]:
        answer = self._command(instance_id, "/users", method="GET")
        return [UserInfo(str(u["name"]), tuple(u["databases"])) for u in answer["users"]]

    def create_users(self, instance_id: str, users: Sequence[UserSpec]) -> None:
        body = [
            {"name": u.name, "password": u.password, "databases": list(u.databases)} for u in users
        ]
        self._command(instance_id, "/users", {"users": body})

    def delete_user(self, instance_id: str, name: str) -> None:
        self._command(instance_id, "/users/delete", {"name": name})

    def update_user(
        self, instance_id: str, name: str, *, new_name: str | None, password: str | None
    ) -> None:
        body = {"name": name, "new_name": new_name, "password": password}
        self._command(instance_id, "/users/update", body)

    def change_passwords(self, instance_id: str, users: Sequence[tuple[str, str]]) -> None:
        body = [{"name": name, "password": password} for name, password in users]
        self._command(instance_id, "/users/passwords", {"users": body})

    def grant_access(self, instance_id: str, name: str, databases: Sequence[str]) -> None:
        self._command(instance_id, "/users/grant", {"name": name, "databases": list(databases)})

    def revoke_access(self, instance_id: str, name: str, database: str) -> None:
        self._command(instance_id, "/users/revoke", {"name": name, "database": database})

    def disable_root(self, instance_id: str) -> None:
        self._command(instance_id, "/root/disable")

    # Replication: the agent's /replication, /promote, /follow, /replication/slots/drop
    # and /stopped_lsn; its refusals (409: a promote of a primary, the stopped position
    # of a running datastore) are GuestError with its message.

    def replication_status(self, instance_id: str) -> ReplicationStatus:
        answer = self._command(instance_id, "/replication", method="GET")
        return ReplicationStatus(
            role=Role(answer["role"]),
            lsn=int(answer["lsn"]),
            timeline=int(answer["timeline"]),
            receive_lsn=None if answer.get("receive_lsn") is None else int(answer["receive_lsn"]),
            replicas=tuple(
                ReplicaLag(
                    slot=str(r["slot"]),
                    active=bool(r["active"]),
                    address=r.get("address"),
                    state=r.get("state"),
                    lag_bytes=None if r.get("lag_bytes") is None else int(r["lag_bytes"]),
                )
                for r in answer.get("replicas", [])
            ),
        )

    def promote(self, instance_id: str) -> None:
        self._command(instance_id, "/promote")

    def archive_into(self, instance_id: str, repository: RepositoryAccess) -> None:
        self._command(instance_id, "/archive", {"repository": _repository_body(repository)})

    def follow(self, instance_id: str, replication: ReplicationSpec) -> None:
        self._command(instance_id, "/follow", _replication_body(replication))

    def make_replication_source(self, instance_id: str, replication: ReplicationSpec) -> None:
        self._command(instance_id, "/replication/source", _replication_body(replication))

    def drop_replication_slot(self, instance_id: str, slot: str) -> None:
        self._command(instance_id, "/replication/slots/drop", {"slot": slot})

    def update_overrides(self, instance_id: str, values: dict[str, str]) -> list[str]:
        answer = self._command(instance_id, "/overrides", {"values": values})
        return [str(n) for n in answer.get("pending_restart", [])]

    def unassign_configuration(self, instance_id: str) -> list[str]:
        answer = self._command(instance_id, "/overrides/unassign")
        return [str(n) for n in answer.get("pending_restart", [])]

    def configuration(self, instance_id: str) -> dict[str, str]:
        answer = self._command(instance_id, "/configuration", method="GET")
        return {str(k): str(v) for k, v in dict(answer.get("values", {})).items()}

    def stopped_lsn(self, instance_id: str) -> int:
        return int(self._command(instance_id, "/stopped_lsn", method="GET")["lsn"])

    def forget(self, instance_id: str) -> None:
        self._record(instance_id).unlink(missing_ok=True)


def _repository_body(repository: RepositoryAccess) -> dict[str, Any]:
    return {
        "stanza": repository.stanza,
        "options": dict(repository.options),
        "files": dict(repository.files),
    }


def _replication_body(replication: ReplicationSpec) -> dict[str, Any]:
    body: dict[str, Any] = {"role": replication.role.value, "password": replication.password}
    if replication.role is Role.REPLICA:
        body.update(
            primary_address=replication.primary_address,
            primary_port=replication.primary_port,
            slot=replication.slot,
        )
    return body
