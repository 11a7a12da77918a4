"""What a datastore manager does for the agent, and the prepare request it receives.

One manager per datastore (`postgresql.py`, ...). A prepared datastore leaves a marker
on the volume (`MARKER`: datastore, version, port): after a reboot the agent reads it to
find its datastore again and start it, whatever the config drive says. A replica's role
is not in the marker: it is the datastore's own (PostgreSQL's `standby.signal` in its data
directory), so a reboot brings a replica back as a replica and a promoted one as a primary.
"""

from __future__ import annotations

import abc
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cellar.domain.backups import RepositoryAccess, RestoreTarget
from cellar.domain.replication import ReplicationSpec, ReplicationStatus, Role
from cellar.domain.specs import DatabaseSpec, UserSpec
from cellar.domain.status import ServiceStatus
from cellar.guest.accounts import Accounts

MARKER = "cellar-datastore.json"


class GuestCommandError(Exception):
    """A command the datastore could not carry out; the message is safe to show."""


class GuestConflict(GuestCommandError):
    """A command that does not apply to the datastore as it is (promote a primary, read
    the stopped position of a running one): the agent answers 409."""


class GuestExists(GuestConflict):
    """A user or database to make exists already (409, reason `exists`)."""


class GuestNotFound(GuestCommandError):
    """A user or database named by a command does not exist (404, reason `not_found`)."""


# A prepare request's databases and users are the domain's own value objects.
Database = DatabaseSpec
User = UserSpec


@dataclass(frozen=True)
class PrepareRequest:
    datastore: str
    version: str
    ram_mb: int
    port: int
    databases: tuple[Database, ...] = ()
    users: tuple[User, ...] = ()
    replication: ReplicationSpec | None = None
    # WAL archiving into the cloud's repository from the first start.
    repository: RepositoryAccess | None = None
    # Restore this instead of initdb (needs `repository`).
    restore: RestoreTarget | None = None


def _text(data: dict[str, Any], key: str, where: str, *, optional: bool = False) -> Any:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}{key} must be a non-empty string")
    return value


def _port(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise ValueError(f"{where} must be an integer from 1 to 65535")
    return value


# A slot name (PostgreSQL's rule) and a host name or address: both go into connection
# strings, so nothing else gets through.
_SLOT = re.compile(r"[a-z0-9_]{1,63}")
_HOST = re.compile(r"[A-Za-z0-9_.:-]{1,253}")


def parse_slot(value: Any, where: str = "slot") -> str:
    if not isinstance(value, str) or not _SLOT.fullmatch(value):
        raise ValueError(f"{where} must be 1 to 63 lowercase letters, digits or _")
    return value


def parse_replication(data: Any, where: str = "replication.") -> ReplicationSpec:
    """A `replication` object (prepare, follow); ValueError names the field at fault."""
    if not isinstance(data, dict):
        raise ValueError(f"{where.rstrip('.')} must be an object")
    try:
        role = Role(data.get("role"))
    except ValueError:
        raise ValueError(f"{where}role must be one of primary, replica") from None
    password = _text(data, "password", where)
    if "\n" in password or "\0" in password:
        raise ValueError(f"{where}password must be one line")
    if role is Role.PRIMARY:
        return ReplicationSpec(role, password)
    address = _text(data, "primary_address", where)
    if not _HOST.fullmatch(address):
        raise ValueError(f"{where}primary_address must be a host name or an IP address")
    return ReplicationSpec(
        role,
        password,
        primary_address=address,
        primary_port=_port(data.get("primary_port", 5432), f"{where}primary_port"),
        slot=parse_slot(data.get("slot"), f"{where}slot"),
    )


def _strings(data: Any, where: str) -> dict[str, str]:
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and "\n" not in k + v and k
        for k, v in data.items()
    ):
        raise ValueError(f"{where} must be an object of one-line strings")
    return dict(data)


def parse_repository(data: Any, where: str = "repository.") -> RepositoryAccess:
    if not isinstance(data, dict):
        raise ValueError(f"{where.rstrip('.')} must be an object")
    files = data.get("files", {})
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        raise ValueError(f"{where}files must be an object of strings")
    options = _strings(data.get("options", {}), f"{where}options")
    if any(not k.replace("-", "").isalnum() for k in [*options, *files]):
        raise ValueError(f"{where}options and files must be named as pgBackRest options")
    try:
        return RepositoryAccess(_text(data, "stanza", where), options, dict(files))
    except ValueError as exc:
        raise ValueError(f"{where}{exc}") from None


def parse_restore(data: Any, where: str = "restore.") -> RestoreTarget:
    if not isinstance(data, dict):
        raise ValueError(f"{where.rstrip('.')} must be an object")
    label = _text(data, "label", where, optional=True)
    if label is not None and not re.fullmatch(
        r"[0-9]{8}-[0-9]{6}[FDI](_[0-9]{8}-[0-9]{6}[DI])?", label
    ):
        raise ValueError(f"{where}label must be a pgBackRest backup label")
    raw = _text(data, "target_time", where, optional=True)
    try:
        instant = None if raw is None else datetime.fromisoformat(raw)
        return RestoreTarget(_text(data, "stanza", where), label, instant)
    except ValueError as exc:
        raise ValueError(f"{where}{exc}") from None


def parse_prepare(body: Any) -> PrepareRequest:
    """The request in a `POST /prepare` body; ValueError names the field at fault."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    ram_mb, port = body.get("ram_mb"), body.get("port")
    if not isinstance(ram_mb, int) or isinstance(ram_mb, bool) or ram_mb < 64:
        raise ValueError("ram_mb must be an integer of at least 64")
    port = _port(port, "port")
    databases, users = body.get("databases", []), body.get("users", [])
    if not isinstance(databases, list) or not all(isinstance(d, dict) for d in databases):
        raise ValueError("databases must be a list of objects")
    if not isinstance(users, list) or not all(isinstance(u, dict) for u in users):
        raise ValueError("users must be a list of objects")
    parsed_users = []
    for i, u in enumerate(users):
        grants = u.get("databases", [])
        if not isinstance(grants, list) or not all(isinstance(g, str) and g for g in grants):
            raise ValueError(f"users[{i}].databases must be a list of names")
        parsed_users.append(
            User(
                name=_text(u, "name", f"users[{i}]."),
                password=_text(u, "password", f"users[{i}]."),
                databases=tuple(grants),
            )
        )
    repository = None if body.get("repository") is None else parse_repository(body["repository"])
    restore = None if body.get("restore") is None else parse_restore(body["restore"])
    if restore is not None and repository is None:
        raise ValueError("restore needs repository: the access to the source's stanza")
    return PrepareRequest(
        datastore=_text(body, "datastore", ""),
        version=_text(body, "version", ""),
        ram_mb=ram_mb,
        port=port,
        databases=tuple(
            Database(
                name=_text(d, "name", f"databases[{i}]."),
                character_set=_text(d, "character_set", f"databases[{i}].", optional=True),
                collate=_text(d, "collate", f"databases[{i}].", optional=True),
            )
            for i, d in enumerate(databases)
        ),
        users=tuple(parsed_users),
        replication=(
            None if body.get("replication") is None else parse_replication(body["replication"])
        ),
        repository=repository,
        restore=restore,
    )


def read_marker(data_dir: Path) -> dict[str, Any] | None:
    """The marker of a prepared datastore on the volume, or None."""
    try:
        data = json.loads((data_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_marker(data_dir: Path, data: dict[str, Any]) -> None:
    tmp = data_dir / f".{MARKER}.tmp"
    tmp.write_text(json.dumps(data))
    os.replace(tmp, data_dir / MARKER)


class DatastoreManager(abc.ABC):
    """One datastore on the server's volume (`data_dir`), listening on `address:port`."""

    datastore = ""
    # The datastore's own administrator, whose password `enable_root` sets.
    superuser = "root"

    def __init__(self, data_dir: Path, *, address: str, version: str, port: int) -> None:
        self.data_dir = data_dir
        self.address = address
        self.version = version
        self.port = port

    @abc.abstractmethod
    def prepare(self, request: PrepareRequest) -> str | None:
        """Make the datastore from nothing and start it; return the new root password
        (the caller hands it out once and never stores or logs it), or None when the
        datastore is a copy of another's (a replica: its primary's superuser is its own)."""

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    @abc.abstractmethod
    def restart(self) -> None: ...

    @abc.abstractmethod
    def status(self) -> ServiceStatus:
        """The state of the prepared datastore: RUNNING, BLOCKED, SHUTDOWN or CRASHED."""

    def enable_root(self, password: str | None = None) -> str:
        """A new password for the datastore's superuser (`password`, or a random one),
        returned and not kept."""
        raise GuestCommandError(f"{type(self).__name__} cannot enable root")

    def accounts(self) -> Accounts:
        """The datastore's users and databases (the agent's account commands)."""
        raise GuestCommandError(f"{type(self).__name__} does not manage users and databases")

    def keep_running(self) -> None:
        """Called by the agent's loop between commands: start again what the datastore's
        service needs beside it and that died (nothing by default)."""
        return None

    def filesystem(self) -> dict[str, int]:
        """Size and free space of the volume, in bytes (what `resize_fs` reports)."""
        st = os.statvfs(self.data_dir)
        return {"size_bytes": st.f_blocks * st.f_frsize, "free_bytes": st.f_bavail * st.f_frsize}

    # Configuration groups (the seed's update_overrides and unassign_configuration).

    def update_overrides(self, values: dict[str, str]) -> list[str]:
        """Make `values` the configuration group's (empty: none) and apply what can be
        applied at once; returns the settings that wait for a restart."""
        raise GuestCommandError(f"{type(self).__name__} does not support configuration groups")

    def configuration(self) -> dict[str, str]:
        """The settings in force that are not the datastore's own defaults."""
        raise GuestCommandError(f"{type(self).__name__} does not support configuration groups")

    # Replication: unsupported until a datastore's manager implements it.

    def _unsupported(self, what: str) -> GuestCommandError:
        return GuestCommandError(f"{type(self).__name__} does not support {what}")

    def replication_status(self) -> ReplicationStatus:
        raise self._unsupported("replication")

    def promote(self) -> None:
        raise self._unsupported("promote")

    def archive_into(self, repository: RepositoryAccess) -> None:
        raise self._unsupported("archiving")

    def follow(self, replication: ReplicationSpec) -> None:
        raise self._unsupported("follow")

    def make_source(self, password: str) -> None:
        raise self._unsupported("replication")

    def drop_slot(self, slot: str) -> None:
        raise self._unsupported("replication slots")

    def stopped_lsn(self) -> int:
        raise self._unsupported("stopped_lsn")
