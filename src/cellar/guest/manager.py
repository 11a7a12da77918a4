"""What a datastore manager does for the agent, and the prepare request it receives.

One manager per datastore (`postgresql.py`, ...). A prepared datastore leaves a marker
on the volume (`MARKER`: datastore, version, port): after a reboot the agent reads it to
find its datastore again and start it, whatever the config drive says.
"""

from __future__ import annotations

import abc
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellar.domain.specs import DatabaseSpec, UserSpec
from cellar.domain.status import ServiceStatus

MARKER = "cellar-datastore.json"


class GuestCommandError(Exception):
    """A command the datastore could not carry out; the message is safe to show."""


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


def _text(data: dict[str, Any], key: str, where: str, *, optional: bool = False) -> Any:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}{key} must be a non-empty string")
    return value


def parse_prepare(body: Any) -> PrepareRequest:
    """The request in a `POST /prepare` body; ValueError names the field at fault."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    ram_mb, port = body.get("ram_mb"), body.get("port")
    if not isinstance(ram_mb, int) or isinstance(ram_mb, bool) or ram_mb < 64:
        raise ValueError("ram_mb must be an integer of at least 64")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ValueError("port must be an integer from 1 to 65535")
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
    def prepare(self, request: PrepareRequest) -> str:
        """Make the datastore from nothing and start it; return the new root password
        (the caller hands it out once and never stores or logs it)."""

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    @abc.abstractmethod
    def restart(self) -> None: ...

    @abc.abstractmethod
    def status(self) -> ServiceStatus:
        """The state of the prepared datastore: RUNNING, BLOCKED, SHUTDOWN or CRASHED."""

    def enable_root(self) -> str:
        """A new password for the datastore's superuser, returned and not kept."""
        raise GuestCommandError(f"{type(self).__name__} cannot enable root")

    def filesystem(self) -> dict[str, int]:
        """Size and free space of the volume, in bytes (what `resize_fs` reports)."""
        st = os.statvfs(self.data_dir)
        return {"size_bytes": st.f_blocks * st.f_frsize, "free_bytes": st.f_bavail * st.f_frsize}
