"""The fake guest's users and databases: kept in the guest's row (`databases`: name to
[character set, collation]; `users`: name to the databases it may use), no password.

What PostgreSQL refuses is refused: a name that exists (the reserved ones exist
already), a name that does not, an unknown encoding or collation, any change on a
replica (read-only: its users and databases are its primary's, read from there), any
command while the datastore is not running.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from cellar.domain.accounts import DatabaseInfo, UserInfo, reserved_database, reserved_user
from cellar.domain.replication import Role
from cellar.domain.specs import DatabaseSpec, InstanceSpec, UserSpec
from cellar.domain.status import ServiceStatus
from cellar.drivers.fake.store import JSON, Row, Tx
from cellar.drivers.guest.base import (
    GuestBadValue,
    GuestError,
    GuestObjectExists,
    GuestObjectNotFound,
)

ENCODINGS = frozenset({"UTF8", "SQL_ASCII", "LATIN1", "LATIN9", "WIN1252", "EUC_JP"})
COLLATIONS = frozenset({"C", "POSIX", "C.UTF-8", "C.utf8", "en_US.UTF-8", "en_US.utf8"})


def seeded(spec: InstanceSpec) -> JSON:
    """What a prepare makes: the create request's databases and users."""
    return {
        "databases": {
            d.name: [d.character_set or "UTF8", d.collate or "C"] for d in spec.databases
        },
        "users": {u.name: sorted(u.databases) for u in spec.users},
    }


class Objects:
    def __init__(self, data: JSON) -> None:
        self.databases: dict[str, list[str]] = dict(data.get("databases") or {})
        self.users: dict[str, list[str]] = {
            k: list(v) for k, v in (data.get("users") or {}).items()
        }

    def data(self) -> JSON:
        return {"databases": self.databases, "users": self.users}

    def list_databases(self) -> list[DatabaseInfo]:
        return [DatabaseInfo(n, *self.databases[n]) for n in sorted(self.databases)]

    def create_databases(self, databases: Sequence[DatabaseSpec]) -> None:
        for db in databases:
            if db.name in self.databases or reserved_database(db.name):
                raise GuestObjectExists(f'A database with the name "{db.name}" already exists.')
            if db.character_set and db.character_set.upper() not in ENCODINGS:
                raise GuestBadValue(f"{db.character_set} is not a valid encoding name")
            if db.collate and db.collate not in COLLATIONS:
                raise GuestBadValue(f'invalid LC_COLLATE locale name: "{db.collate}"')
        for db in databases:
            charset = (db.character_set or "UTF8").upper()
            self.databases[db.name] = [charset, db.collate or "C"]

    def delete_database(self, name: str) -> None:
        if self.databases.pop(name, None) is None:
            raise GuestObjectNotFound(f"Database {name} cannot be found on the instance.")
        for grants in self.users.values():
            if name in grants:
                grants.remove(name)

    def list_users(self) -> list[UserInfo]:
        return [UserInfo(n, tuple(self.users[n])) for n in sorted(self.users)]

    def _user(self, name: str) -> list[str]:
        if name not in self.users:
            raise GuestObjectNotFound(f"User {name} cannot be found on the instance.")
        return self.users[name]

    def _databases(self, names: Sequence[str]) -> None:
        for name in names:
            if name not in self.databases:
                raise GuestObjectNotFound(f"Database {name} cannot be found on the instance.")

    def create_users(self, users: Sequence[UserSpec]) -> None:
        for user in users:
            if user.name in self.users or reserved_user(user.name):
                raise GuestObjectExists(f'A user with the name "{user.name}" already exists.')
            self._databases(user.databases)
        for user in users:
            self.users[user.name] = sorted(set(user.databases))

    def delete_user(self, name: str) -> None:
        self._user(name)
        del self.users[name]

    def update_user(self, name: str, new_name: str | None) -> None:
        grants = self._user(name)
        if new_name is None or new_name == name:
            return
        if new_name in self.users or reserved_user(new_name):
            raise GuestObjectExists(f'A user with the name "{new_name}" already exists.')
        del self.users[name]
        self.users[new_name] = grants

    def change_passwords(self, names: Sequence[str]) -> None:
        for name in names:
            self._user(name)

    def grant(self, name: str, databases: Sequence[str]) -> None:
        grants = self._user(name)
        self._databases(databases)
        self.users[name] = sorted({*grants, *databases})

    def revoke(self, name: str, database: str) -> None:
        grants = self._user(name)
        if database not in grants:
            raise GuestObjectNotFound(f"Database {database} cannot be found on the instance.")
        grants.remove(database)


Reach = Callable[[Tx, str], tuple[Row, Row]]


@contextmanager
def session(
    call: AbstractContextManager[Tx], instance_id: str, *, write: bool, reach: Reach
) -> Iterator[Objects]:
    """The objects of a reachable, running guest (its primary's for a replica); with
    `write`, saved when the body returns (a replica refuses)."""
    from cellar.drivers.fake.guest import find_guest, service_now  # they import this module

    with call as tx:
        guest, _ = reach(tx, instance_id)
        if service_now(tx, guest) is not ServiceStatus.RUNNING:
            raise GuestError(f"The datastore of instance {instance_id} is not running.")
        holder: Row | None = guest
        if guest.data.get("role") == Role.REPLICA.value:
            if write:
                raise GuestError(
                    f"Instance {instance_id} is a read-only replica: cannot execute "
                    "this command in a read-only transaction."
                )
            holder = find_guest(tx, str(guest.data.get("primary")))
        objects = Objects(holder.data if holder is not None else {})
        yield objects
        if write and holder is not None:
            changes: dict[str, Any] = objects.data()
            tx.update(holder.changed(**changes))
