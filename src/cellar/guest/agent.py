"""The guest agent: the datastore's keeper inside one server.

It reads the config drive, serves the control plane's commands (`guest/http.py`), and
reports the datastore's status to the control plane: a heartbeat every
`heartbeat_interval_s`, and at once whenever the status changes (checked every
`check_interval_s`). On start it looks for a datastore already prepared on the volume
(after a reboot, or once the volume is mounted) and starts it: the database starts on boot.
Between commands it starts again what the datastore needs beside it and that died (the
pgBackRest server through which the repository's host takes backups).

Status: BUILDING while a prepare runs, FAILED when the last prepare failed, NEW before
any datastore exists, else what the datastore's manager reports.

Passwords (the users', the root password and the replication role's) are never logged;
the root password made by a prepare is kept in memory only until the control plane reads it
once (`take_root_password`), and is lost if the agent restarts before that.
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellar.domain.replication import ReplicationStatus, Role
from cellar.domain.status import ServiceStatus
from cellar.guest.accounts import ACCOUNT_COMMANDS
from cellar.guest.manager import (
    DatastoreManager,
    GuestCommandError,
    GuestConflict,
    GuestExists,
    GuestNotFound,
    PrepareRequest,
    parse_prepare,
    parse_replication,
    parse_repository,
    parse_slot,
    read_marker,
    write_marker,
)
from cellar.guest.pgoverrides import parse_overrides
from cellar.guest.protocol import META_DATA, SECRET_HEADER, USER_DATA, heartbeat_path

log = logging.getLogger("cellar.guest")

# Datastore managers by name, imported when first used: the agent answers its first
# request sooner (a manager's client library, psycopg, takes ~0.1 s to import), and
# `preload_managers` imports them in the background while the first prepare runs.
MANAGERS: dict[str, tuple[str, str]] = {"postgresql": ("cellar.guest.postgresql", "PostgreSQL")}


def manager_class(datastore: str) -> type[DatastoreManager]:
    module, name = MANAGERS[datastore]
    cls: type[DatastoreManager] = getattr(importlib.import_module(module), name)
    return cls


def preload_managers() -> None:
    for module, _name in MANAGERS.values():
        importlib.import_module(module)


Reply = tuple[int, dict[str, Any]]


def replication_body(status: ReplicationStatus) -> dict[str, Any]:
    """`GET /replication`'s answer (LSNs as byte positions)."""
    return {
        "role": status.role.value,
        "lsn": status.lsn,
        "timeline": status.timeline,
        "receive_lsn": status.receive_lsn,
        "replicas": [
            {"slot": r.slot, "active": r.active, "address": r.address, "state": r.state,
             "lag_bytes": r.lag_bytes}
            for r in status.replicas
        ],
    }  # fmt: skip


def _root_password(body: Any) -> str | None:
    """The password a `root` command asks for, if any (else the datastore makes one)."""
    password = body.get("password") if isinstance(body, dict) else None
    if password is not None and (not isinstance(password, str) or not password or "\0" in password):
        raise ValueError("password must be a non-empty string without NUL characters")
    return password


def _on_accounts(command: Any) -> Any:
    """An account command as a command on the datastore's manager."""
    return lambda manager, body: command(manager.accounts(), body)


def _follow(manager: DatastoreManager, body: Any) -> dict[str, Any]:
    spec = parse_replication(body, "")
    if spec.role is not Role.REPLICA:
        raise ValueError("role must be replica: a server follows a primary as its replica")
    manager.follow(spec)
    return {}


def _make_source(manager: DatastoreManager, body: Any) -> dict[str, Any]:
    spec = parse_replication(body, "")
    if spec.role is not Role.PRIMARY:
        raise ValueError("role must be primary: replicas stream from a primary")
    manager.make_source(spec.password)
    return {}


def _update_overrides(manager: DatastoreManager, body: Any) -> dict[str, Any]:
    return {"pending_restart": manager.update_overrides(parse_overrides(body))}


def _drop_slot(manager: DatastoreManager, body: Any) -> dict[str, Any]:
    manager.drop_slot(parse_slot(body.get("slot") if isinstance(body, dict) else None))
    return {}


def _archive_into(manager: DatastoreManager, body: Any) -> dict[str, Any]:
    manager.archive_into(
        parse_repository(body.get("repository") if isinstance(body, dict) else None)
    )
    return {}


# The commands on a prepared datastore: what each does, given the request's body, and
# what it adds to the answer. A ValueError is the body's fault (400).
COMMANDS: dict[str, Any] = {
    "stop": lambda m, _b: m.stop() or {},
    "start": lambda m, _b: m.start() or {},
    "restart": lambda m, _b: m.restart() or {},
    "resize_fs": lambda m, _b: m.filesystem(),
    # The password goes back to the caller and nowhere else (no log).
    "root": lambda m, b: {"name": m.superuser, "password": m.enable_root(_root_password(b))},
    "replication": lambda m, _b: replication_body(m.replication_status()),
    "promote": lambda m, _b: m.promote() or {},
    "follow": _follow,
    "make_source": _make_source,
    "drop_slot": _drop_slot,
    "stopped_lsn": lambda m, _b: {"lsn": m.stopped_lsn()},
    "archive_into": _archive_into,
    # Users and databases (`cellar.guest.accounts`): passwords in, never out.
    **{name: _on_accounts(command) for name, command in ACCOUNT_COMMANDS.items()},
    "update_overrides": _update_overrides,
    "unassign_configuration": lambda m, _b: {"pending_restart": m.update_overrides({})},
    "configuration": lambda m, _b: {"values": m.configuration()},
}


@dataclass(frozen=True)
class ConfigDrive:
    instance_id: str
    control_plane_url: str
    secret: str
    server_id: str
    address: str
    data_dir: Path
    # Set when the server belongs to a stack: the wait condition handle to signal once
    # the datastore is ready (Heat's token signal: POST with X-Auth-Token).
    ready_signal_url: str | None = None
    ready_signal_token: str | None = None

    @classmethod
    def read(cls, path: Path) -> ConfigDrive:
        """The drive in `path`; ValueError says what is missing."""
        try:
            user = json.loads((path / USER_DATA).read_text())
            meta = json.loads((path / META_DATA).read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the config drive {path}: {exc}") from exc
        wanted = {USER_DATA: ("instance_id", "control_plane_url", "secret"),
                  META_DATA: ("address", "data_dir")}  # fmt: skip
        for name, data in ((USER_DATA, user), (META_DATA, meta)):
            missing = [k for k in wanted[name] if not isinstance(data, dict) or k not in data]
            if missing:
                raise ValueError(
                    f"{path / name} lacks {', '.join(missing)}: the server was not made with "
                    "the guest driver's user data"
                )
        return cls(
            instance_id=str(user["instance_id"]),
            control_plane_url=str(user["control_plane_url"]).rstrip("/"),
            secret=str(user["secret"]),
            server_id=str(meta.get("server_id", "")),
            address=str(meta["address"]),
            data_dir=Path(meta["data_dir"]),
            ready_signal_url=user.get("ready_signal_url") or None,
            ready_signal_token=user.get("ready_signal_token") or None,
        )


class Agent:
    def __init__(
        self,
        drive: ConfigDrive,
        *,
        heartbeat_interval_s: float = 5.0,
        check_interval_s: float = 1.0,
        signal_retry_s: float = 300.0,
    ) -> None:
        self.drive = drive
        self.heartbeat_interval_s = heartbeat_interval_s
        self.check_interval_s = check_interval_s
        # How long a ready signal is retried while the control plane cannot take it.
        self.signal_retry_s = signal_retry_s
        self._commands = threading.Lock()  # one datastore command at a time
        self._manager: DatastoreManager | None = None
        self._building = False
        self._failure: str | None = None
        self._root_password: str | None = None
        self._keep_failure: str | None = None
        self._changed = threading.Event()
        self._stopping = threading.Event()

    def _make(self, datastore: str, version: str, port: int) -> DatastoreManager:
        cls = manager_class(datastore)
        return cls(self.drive.data_dir, address=self.drive.address, version=version, port=port)

    # What the HTTP server calls.

    def service_status(self) -> ServiceStatus:
        if self._building:
            return ServiceStatus.BUILDING
        if self._failure is not None:
            return ServiceStatus.FAILED
        manager = self._manager
        return ServiceStatus.NEW if manager is None else manager.status()

    def status(self) -> Reply:
        manager = self._manager
        body: dict[str, Any] = {"service_status": self.service_status().value}
        if manager is not None:
            body.update(datastore=manager.datastore, version=manager.version)
        if self._failure is not None:
            body["error"] = self._failure
        return 200, body

    def prepare(self, body: Any) -> Reply:
        try:
            request = parse_prepare(body)
        except ValueError as exc:
            return 400, {"error": str(exc)}
        if request.datastore not in MANAGERS:
            return 400, {"error": f"datastore {request.datastore!r} is not supported here"}
        if not self._commands.acquire(blocking=False):
            return 503, {"error": "the agent is busy with another command; retry"}
        if self._manager is None:
            self._adopt()  # a datastore already on the volume is never prepared over
        if self._manager is not None:  # a repeat: nothing to do
            self._commands.release()
            return 200, {"service_status": self.service_status().value}
        self._building, self._failure = True, None
        threading.Thread(target=self._prepare, args=(request,), name="prepare").start()
        return 202, {"service_status": ServiceStatus.BUILDING.value}

    def _prepare(self, request: PrepareRequest) -> None:
        """In its own thread, holding the command lock."""
        started = time.monotonic()
        try:
            manager = self._make(request.datastore, request.version, request.port)
            password = manager.prepare(request)
            write_marker(
                self.drive.data_dir,
                {"datastore": request.datastore, "version": request.version, "port": request.port},
            )
            self._manager, self._root_password = manager, password
            log.info("prepared %s %s in %.1f s", request.datastore, request.version,
                     time.monotonic() - started)  # fmt: skip
            self._signal_in_background("SUCCESS", "the datastore is ready")
        except Exception as exc:
            detail = exc.args[0] if isinstance(exc, GuestCommandError) else type(exc).__name__
            self._failure = f"prepare failed: {detail}"
            log.error("%s", self._failure)
            self._signal_in_background("FAILURE", self._failure)
        finally:
            self._building = False
            self._commands.release()
            self._changed.set()

    def command(self, name: str, body: Any = None) -> Reply:
        """One of `COMMANDS` on the prepared datastore (synchronous)."""
        action = COMMANDS.get(name)
        if action is None:
            return 404, {"error": f"no command {name}"}
        if self._building:
            return 409, {"error": "the datastore is being prepared"}
        if not self._commands.acquire(timeout=120):
            return 503, {"error": "the agent is busy with another command; retry"}
        try:
            # Just after a boot the agent may not have taken the datastore on the volume
            # yet (its loop does that): a command must not be refused for that.
            self._adopt()
            manager = self._manager
            if manager is None:
                return 409, {"error": "no datastore has been prepared on this server"}
            started = time.monotonic()
            extra: dict[str, Any] = action(manager, body)
            if name not in ("replication", "stopped_lsn", "configuration"):  # reads
                log.info("%s done in %.2f s", name, time.monotonic() - started)
            return 200, {"service_status": manager.status().value, **extra}
        except ValueError as exc:
            return 400, {"error": str(exc), "reason": "invalid"}
        except GuestNotFound as exc:
            return 404, {"error": str(exc), "reason": "not_found"}
        except GuestExists as exc:
            return 409, {"error": str(exc), "reason": "exists"}
        except GuestConflict as exc:
            return 409, {"error": str(exc)}
        except GuestCommandError as exc:
            log.error("%s failed: %s", name, exc)
            return 500, {"error": str(exc)}
        finally:
            self._commands.release()
            self._changed.set()

    def take_root_password(self) -> str | None:
        """The root password of the last prepare, once; None ever after."""
        password, self._root_password = self._root_password, None
        return password

    # The agent's own loop: boot start and heartbeats.

    def boot(self) -> None:
        """Start the datastore found on the volume, if there is one and no prepare ran."""
        if self._manager is not None or self._building:
            return
        if read_marker(self.drive.data_dir) is None:
            return
        with self._commands:
            if not self._building:
                self._adopt()

    def _adopt(self) -> None:
        """With the command lock held: take the datastore on the volume and start it."""
        marker = read_marker(self.drive.data_dir)
        if self._manager is not None or marker is None or marker.get("datastore") not in MANAGERS:
            return
        manager = self._make(marker["datastore"], str(marker["version"]), int(marker["port"]))
        self._manager = manager
        try:
            manager.start()
            log.info("started the %s datastore found on the volume", manager.datastore)
        except GuestCommandError as exc:
            log.error("starting the datastore found on the volume failed: %s", exc)
        self._changed.set()

    def keep(self) -> None:
        """Between commands (never beside one): what the datastore needs beside it,
        started again if it died (`DatastoreManager.keep_running`)."""
        manager = self._manager
        if manager is None or self._building or not self._commands.acquire(blocking=False):
            return
        try:
            manager.keep_running()
            self._keep_failure = None
        except Exception as exc:  # the loop goes on: it reports the status
            if str(exc) != self._keep_failure:  # once, not every check
                log.error("keeping the datastore's services running failed: %s", exc)
            self._keep_failure = str(exc)
        finally:
            self._commands.release()

    def stop(self) -> None:
        self._stopping.set()
        self._changed.set()

    def run(self) -> None:
        """Until `stop`: start a datastore found on the volume, and report."""
        sent: ServiceStatus | None = None
        sent_at = 0.0
        failing = False
        while not self._stopping.is_set():
            self.boot()
            self.keep()
            status = self.service_status()
            now = time.monotonic()
            if status is not sent or now - sent_at >= self.heartbeat_interval_s:
                error = self.send_heartbeat(status)
                sent_at = now
                if error is None:
                    sent, failing = status, False
                elif not failing:
                    failing = True
                    log.warning("heartbeat to the control plane failed: %s", error)
            self._changed.wait(self.check_interval_s)
            self._changed.clear()

    def _signal_in_background(self, status: str, reason: str) -> None:
        """Signal without holding up the commands (the retries may take minutes)."""
        threading.Thread(
            target=self.signal_ready, args=(status, reason), name="ready-signal", daemon=True
        ).start()

    def signal_ready(self, status: str, reason: str) -> bool:
        """Tell the stack's wait condition how the prepare ended (if the server has one).

        Retried with backoff for `signal_retry_s` while the control plane cannot be reached
        or answers 500/502/503/504 (it may be restarting); any other refusal (a wrong token,
        a handle gone) is final.
        True once the signal was taken."""
        url, token = self.drive.ready_signal_url, self.drive.ready_signal_token
        if not url or not token:
            return False
        body = json.dumps({"status": status, "reason": reason, "id": self.drive.instance_id})
        deadline, pause = time.monotonic() + self.signal_retry_s, 0.2
        while True:
            request = urllib.request.Request(
                url,
                data=body.encode(),
                method="POST",
                headers={"Content-Type": "application/json", "X-Auth-Token": token},
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    response.read()
                return True
            except urllib.error.HTTPError as exc:
                if exc.code not in (500, 502, 503, 504):
                    log.error("the wait condition refused the signal: %s", exc)
                    return False
                error: Exception = exc
            except ValueError as exc:  # not a URL this agent can post to
                log.error("cannot signal the wait condition at %r: %s", url, exc)
                return False
            except OSError as exc:
                error = exc
            if time.monotonic() + pause > deadline:
                log.error("signalling the wait condition failed: %s", error)
                return False
            log.warning("signalling the wait condition failed (%s); retrying", error)
            time.sleep(pause)
            pause = min(pause * 2, 5.0)

    def send_heartbeat(self, status: ServiceStatus) -> str | None:
        """POST one heartbeat; None if the control plane took it, else why not."""
        body = json.dumps({"service_status": status.value, "sent": time.time()}).encode()
        request = urllib.request.Request(
            self.drive.control_plane_url + heartbeat_path(self.drive.instance_id),
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", SECRET_HEADER: self.drive.secret},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            return str(exc) or type(exc).__name__
        return None
