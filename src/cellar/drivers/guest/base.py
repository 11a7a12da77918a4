"""The guest: the agent inside each server, seen from the control plane.

Guest commands are not resource-manager operations: every manager uses this same client.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass

from cellar.domain.accounts import DatabaseInfo, UserInfo
from cellar.domain.backups import RepositoryAccess, RestoreTarget
from cellar.domain.replication import ReplicationSpec, ReplicationStatus
from cellar.domain.specs import DatabaseSpec, InstanceSpec, UserSpec
from cellar.domain.status import ServiceStatus
from cellar.drivers.base import DriverError, DriverOperationNotSupported


class GuestError(DriverError):
    """The guest refused or failed a command."""


class GuestRefusal(GuestError):
    """A refusal the user caused; `detail` is the datastore's own words, for the user."""

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail or message


class GuestObjectExists(GuestRefusal):
    """A user or database to make exists already."""


class GuestObjectNotFound(GuestRefusal):
    """A user or database named does not exist."""


class GuestBadValue(GuestRefusal):
    """The datastore cannot take a value it was given (an unknown encoding)."""


@dataclass(frozen=True)
class GuestStatus:
    service: ServiceStatus
    # Seconds since the guest last reported; None when it never has.
    age_s: float | None = None
    # What the guest says went wrong (a failed prepare), if anything.
    error: str | None = None


class GuestDriver(abc.ABC):
    name: str = "guest"

    @property
    def control_plane_url(self) -> str | None:
        """The control plane's API as the guests reach it, or None when the guest runs no
        code of its own (the fake)."""
        return None

    @property
    def signals_ready(self) -> bool:
        """Whether the guest itself signals its stack's wait condition (POSTs to the
        handle's endpoint) when its datastore is ready; if not, the orchestrator signals
        for it once the guest reports RUNNING."""
        return self.control_plane_url is not None

    def user_data(self, instance_id: str) -> dict[str, str]:
        """What the server's config drive must carry for its guest agent to find the
        control plane (address, per-instance secret). Nothing by default."""
        return {}

    @abc.abstractmethod
    def prepare(
        self,
        instance_id: str,
        *,
        server_id: str,
        spec: InstanceSpec,
        replication: ReplicationSpec | None = None,
    ) -> None:
        """Ask the guest to set up the datastore (asynchronous: poll `status`). With
        `replication`, as a primary of a group or as a replica copied from its primary."""

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
        """`prepare`, with WAL archiving into `repository` from the datastore's first
        start (and, on the local cloud, pgBackRest's TLS server for the repository host's
        backups). With `restore`: no initdb; the data directory is restored from that
        stanza (a backup set's end, or an instant: see `RestoreTarget`), then given this
        server's own settings and a new root password, as a fresh prepare would; status
        RUNNING once it takes writes on its own timeline. Asynchronous: poll `status`."""
        raise DriverOperationNotSupported(self.name, "prepare_with_repository")

    @abc.abstractmethod
    def status(self, instance_id: str) -> GuestStatus: ...

    @abc.abstractmethod
    def stop_db(self, instance_id: str) -> None: ...

    @abc.abstractmethod
    def start_db(self, instance_id: str) -> None: ...

    @abc.abstractmethod
    def restart(self, instance_id: str) -> None: ...

    @abc.abstractmethod
    def resize_fs(self, instance_id: str) -> None:
        """Grow the datastore's filesystem to its volume's new size."""

    def enable_root(self, instance_id: str, *, password: str | None = None) -> tuple[str, str]:
        """Give the datastore's superuser a new password (`password`, or a random one);
        returns (user name, password). The password is kept nowhere: the caller gets it
        once (Trove's `POST .../root`)."""
        raise DriverOperationNotSupported(self.name, "enable_root")

    # Users and databases (Trove's `/users`, `/databases`, `DELETE /root`). Names that
    # exist already are GuestObjectExists, names that do not GuestObjectNotFound;
    # reserved names are never listed. Passwords go to the datastore and nowhere else.

    def list_databases(self, instance_id: str) -> list[DatabaseInfo]:
        raise DriverOperationNotSupported(self.name, "list_databases")

    def create_databases(self, instance_id: str, databases: Sequence[DatabaseSpec]) -> None:
        """All of them, or none if one exists."""
        raise DriverOperationNotSupported(self.name, "create_databases")

    def delete_database(self, instance_id: str, name: str) -> None:
        raise DriverOperationNotSupported(self.name, "delete_database")

    def list_users(self, instance_id: str) -> list[UserInfo]:
        raise DriverOperationNotSupported(self.name, "list_users")

    def create_users(self, instance_id: str, users: Sequence[UserSpec]) -> None:
        """All of them with their grants, or none if one exists or a database does not."""
        raise DriverOperationNotSupported(self.name, "create_users")

    def delete_user(self, instance_id: str, name: str) -> None:
        raise DriverOperationNotSupported(self.name, "delete_user")

    def update_user(
        self, instance_id: str, name: str, *, new_name: str | None, password: str | None
    ) -> None:
        """Rename (grants follow) and/or set a new password."""
        raise DriverOperationNotSupported(self.name, "update_user")

    def change_passwords(self, instance_id: str, users: Sequence[tuple[str, str]]) -> None:
        """(name, password) pairs; none changed if one user does not exist."""
        raise DriverOperationNotSupported(self.name, "change_passwords")

    def grant_access(self, instance_id: str, name: str, databases: Sequence[str]) -> None:
        """The user may connect to and create tables in each database."""
        raise DriverOperationNotSupported(self.name, "grant_access")

    def revoke_access(self, instance_id: str, name: str, database: str) -> None:
        """GuestObjectNotFound unless the user has access to the database."""
        raise DriverOperationNotSupported(self.name, "revoke_access")

    def disable_root(self, instance_id: str) -> None:
        """The superuser no longer logs in with a password (`enable_root` gives one)."""
        raise DriverOperationNotSupported(self.name, "disable_root")

    # Configuration groups: guest tasks, the same under every resource manager.

    def update_overrides(self, instance_id: str, values: dict[str, str]) -> list[str]:
        """Make `values` (postgresql.conf's form) the instance's configuration group and
        apply at once what the datastore allows (a reload); returns the settings whose new
        value waits for a restart (none: everything is in force)."""
        raise DriverOperationNotSupported(self.name, "update_overrides")

    def unassign_configuration(self, instance_id: str) -> list[str]:
        """Remove the configuration group's values: every setting back to its default
        (cellar's or the datastore's); returns the settings that wait for a restart."""
        raise DriverOperationNotSupported(self.name, "unassign_configuration")

    def configuration(self, instance_id: str) -> dict[str, str]:
        """The settings in force that differ from the datastore's own defaults."""
        raise DriverOperationNotSupported(self.name, "configuration")

    # Replication (clusters and `replica_of`).

    def replication_password(self, group_id: str) -> str:
        """The replication role's password for a group (cluster or primary): derived from
        the group id, the same on every call, stored nowhere."""
        raise DriverOperationNotSupported(self.name, "replication_password")

    def replication_status(self, instance_id: str) -> ReplicationStatus:
        """Role, WAL position and (on a primary) each slot's standby and lag."""
        raise DriverOperationNotSupported(self.name, "replication_status")

    def make_replication_source(self, instance_id: str, replication: ReplicationSpec) -> None:
        """Let replicas stream from this running primary (one prepared alone, before its
        first `replica_of`): the replication role with the group's password, made or its
        password set again. GuestError on a replica."""
        raise DriverOperationNotSupported(self.name, "make_replication_source")

    def archive_into(self, instance_id: str, repository: RepositoryAccess) -> None:
        """The running datastore archives into `repository`'s stanza from now on (a
        replica leaving its group: its own stanza, before it is promoted)."""
        raise DriverOperationNotSupported(self.name, "archive_into")

    def promote(self, instance_id: str) -> None:
        """Make a replica a primary; returns once it takes writes. GuestError on a primary."""
        raise DriverOperationNotSupported(self.name, "promote")

    def follow(self, instance_id: str, replication: ReplicationSpec) -> None:
        """Stream from another primary: a replica is re-pointed; a former primary (stopped
        or running) is rewound (`pg_rewind`) to the new primary's timeline and started as
        its standby. Returns once the datastore runs as a standby."""
        raise DriverOperationNotSupported(self.name, "follow")

    def drop_replication_slot(self, instance_id: str, slot: str) -> None:
        """On a primary: drop `slot` (a removed replica's); nothing if it does not exist."""
        raise DriverOperationNotSupported(self.name, "drop_replication_slot")

    def stopped_lsn(self, instance_id: str) -> int:
        """The WAL position a cleanly stopped datastore ended at (its last checkpoint's),
        read from the control file: a switchover waits for the new primary to have
        replayed up to it. GuestError if the datastore is running."""
        raise DriverOperationNotSupported(self.name, "stopped_lsn")

    @abc.abstractmethod
    def forget(self, instance_id: str) -> None:
        """Drop whatever the control plane holds for this guest (on delete)."""
