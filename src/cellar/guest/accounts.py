"""Users and databases inside the datastore, as the agent's commands (`guest/http.py`).

A datastore's manager gives its `Accounts` (`DatastoreManager.accounts`); the commands
here parse the control plane's bodies and answer with plain JSON. Refusals: a name that
exists already is `GuestExists` (409), one that does not `GuestNotFound` (404), a body or
value the datastore cannot take a `ValueError` (400). Passwords go into the datastore and
nowhere else: no answer carries them and nothing logs them.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

from cellar.domain.accounts import DatabaseInfo, UserInfo
from cellar.domain.specs import DatabaseSpec, UserSpec


class Accounts(abc.ABC):
    """The users and databases of one running datastore. Reserved names are never listed."""

    @abc.abstractmethod
    def list_databases(self) -> list[DatabaseInfo]: ...

    @abc.abstractmethod
    def create_databases(self, databases: Sequence[DatabaseSpec]) -> None:
        """All or none refused up front: GuestExists if any exists already."""

    @abc.abstractmethod
    def delete_database(self, name: str) -> None: ...

    @abc.abstractmethod
    def list_users(self) -> list[UserInfo]: ...

    @abc.abstractmethod
    def create_users(self, users: Sequence[UserSpec]) -> None:
        """GuestExists if a user exists, GuestNotFound if a granted database does not."""

    @abc.abstractmethod
    def delete_user(self, name: str) -> None: ...

    @abc.abstractmethod
    def update_user(self, name: str, *, new_name: str | None, password: str | None) -> None: ...

    @abc.abstractmethod
    def change_passwords(self, users: Sequence[tuple[str, str]]) -> None: ...

    @abc.abstractmethod
    def grant(self, name: str, databases: Sequence[str]) -> None: ...

    @abc.abstractmethod
    def revoke(self, name: str, database: str) -> None:
        """GuestNotFound unless the user has access to the database."""

    @abc.abstractmethod
    def disable_root(self) -> None:
        """The superuser's password is taken away: it no longer logs in with one."""


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or "\0" in value or len(value) > 63:
        raise ValueError(f"{where} must be a name of 1 to 63 characters")
    return value


def _password(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or "\0" in value:
        raise ValueError(f"{where} must be a non-empty string without NUL characters")
    return value


def _list(body: Any, key: str) -> list[Any]:
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ValueError(f"{key} must be a list of objects")
    return items


def _optional(data: dict[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    return None if value is None else _name(value, f"{where}{key}")


def parse_databases(body: Any) -> list[DatabaseSpec]:
    return [
        DatabaseSpec(
            name=_name(d.get("name"), f"databases[{i}].name"),
            character_set=_optional(d, "character_set", f"databases[{i}]."),
            collate=_optional(d, "collate", f"databases[{i}]."),
        )
        for i, d in enumerate(_list(body, "databases"))
    ]


def parse_users(body: Any) -> list[UserSpec]:
    users = []
    for i, u in enumerate(_list(body, "users")):
        grants = u.get("databases", [])
        if not isinstance(grants, list):
            raise ValueError(f"users[{i}].databases must be a list of names")
        users.append(
            UserSpec(
                name=_name(u.get("name"), f"users[{i}].name"),
                password=_password(u.get("password"), f"users[{i}].password"),
                databases=tuple(_name(g, f"users[{i}].databases[]") for g in grants),
            )
        )
    return users


def _field(body: Any, key: str) -> Any:
    return body.get(key) if isinstance(body, dict) else None


def _database_body(d: DatabaseInfo) -> dict[str, Any]:
    return {"name": d.name, "character_set": d.character_set, "collate": d.collate}


def _update_user(a: Accounts, body: Any) -> dict[str, Any]:
    password = _field(body, "password")
    a.update_user(
        _name(_field(body, "name"), "name"),
        new_name=None if _field(body, "new_name") is None else _name(body["new_name"], "new_name"),
        password=None if password is None else _password(password, "password"),
    )
    return {}


def _change_passwords(a: Accounts, body: Any) -> dict[str, Any]:
    pairs = [
        (_name(u.get("name"), f"users[{i}].name"),
         _password(u.get("password"), f"users[{i}].password"))
        for i, u in enumerate(_list(body, "users"))
    ]  # fmt: skip
    a.change_passwords(pairs)
    return {}


def _grant(a: Accounts, body: Any) -> dict[str, Any]:
    names = _field(body, "databases")
    if not isinstance(names, list):
        raise ValueError("databases must be a list of names")
    a.grant(_name(_field(body, "name"), "name"), [_name(n, "databases[]") for n in names])
    return {}


# The agent's commands on `DatastoreManager.accounts()`: (accounts, body) -> answer.
ACCOUNT_COMMANDS: dict[str, Any] = {
    "databases": lambda a, _b: {"databases": [_database_body(d) for d in a.list_databases()]},
    "create_databases": lambda a, b: a.create_databases(parse_databases(b)) or {},
    "delete_database": lambda a, b: a.delete_database(_name(_field(b, "name"), "name")) or {},
    "users": lambda a, _b: {
        "users": [{"name": u.name, "databases": list(u.databases)} for u in a.list_users()]
    },
    "create_users": lambda a, b: a.create_users(parse_users(b)) or {},
    "delete_user": lambda a, b: a.delete_user(_name(_field(b, "name"), "name")) or {},
    "update_user": _update_user,
    "change_passwords": _change_passwords,
    "grant": _grant,
    "revoke": lambda a, b: (
        a.revoke(_name(_field(b, "name"), "name"), _name(_field(b, "database"), "database")) or {}
    ),
    "disable_root": lambda a, _b: a.disable_root() or {},
}
