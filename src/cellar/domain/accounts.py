"""A datastore's users and databases as the API and the guests speak of them (Trove's
`/instances/{id}/users` and `/databases`).

Some names belong to the datastore or to cellar itself: they are never listed, and a
request naming them is refused (`reserved_user`, `reserved_database`).

PostgreSQL's superuser (`postgres`) is cellar's own account: the agent reaches it by
peer authentication through the server's socket, and Trove's root (`POST /root`) gives
it a password that works over the network; disabling root takes that password away.
"""

from __future__ import annotations

from dataclasses import dataclass

from cellar.domain.replication import REPLICATION_USER

SUPERUSER = "postgres"
# Roles no user may make, change or see: the superuser, the replication role, Trove's own
# admin account names; PostgreSQL reserves every `pg_` name for itself.
RESERVED_USERS = frozenset({SUPERUSER, REPLICATION_USER, "root", "os_admin"})
RESERVED_DATABASES = frozenset({"postgres", "template0", "template1"})
# Trove's users all connect from anywhere (`%`): PostgreSQL's access is the security
# group's business, not a per-user host.
ANY_HOST = "%"


def reserved_user(name: str) -> bool:
    return name in RESERVED_USERS or name.lower().startswith("pg_")


def reserved_database(name: str) -> bool:
    return name in RESERVED_DATABASES


@dataclass(frozen=True)
class DatabaseInfo:
    name: str
    character_set: str | None = None
    collate: str | None = None


@dataclass(frozen=True)
class UserInfo:
    """A user as listed: its name and the databases it may connect to (no password)."""

    name: str
    databases: tuple[str, ...] = ()
    host: str = ANY_HOST
