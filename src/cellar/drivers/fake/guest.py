"""The fake guest agent: a datastore whose status follows the commands and its server.

The datastore is down (SHUTDOWN) while its server reboots or resizes, and RUNNING once
the server has booted again, whatever it was before: the database starts on boot. The
agent reports all the time while its server exists (`age_s` 0); once the server is gone,
`age_s` counts from the agent's last command.

Prepared with a repository (`prepare_with_repository`), the datastore archives into its
stanza (`stanza` in its row: `cellar.drivers.fake.backup` reads it); a restore is checked
by the fake repository and recorded (`restored_from`), its WAL position the set's end.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from contextlib import AbstractContextManager

from cellar.domain.accounts import SUPERUSER, DatabaseInfo, UserInfo
from cellar.domain.backups import RepositoryAccess, RestoreTarget
from cellar.domain.parameters import load_catalogue
from cellar.domain.replication import ReplicaLag, ReplicationSpec, ReplicationStatus, Role
from cellar.domain.specs import DatabaseSpec, InstanceSpec, UserSpec
from cellar.domain.status import ServerStatus, ServiceStatus
from cellar.drivers.fake import accounts
from cellar.drivers.fake.cloud import FakeCloud
from cellar.drivers.fake.compute import server_status
from cellar.drivers.fake.store import GUEST, JSON, SERVER, Row, Tx, pending, settle_in
from cellar.drivers.guest.base import GuestDriver, GuestError, GuestStatus

# Server states in which the guest answers commands.
_REACHABLE = frozenset({ServerStatus.ACTIVE, ServerStatus.VERIFY_RESIZE})


def _key(instance_id: str) -> str:
    """Guests are keyed by instance id, kept apart from the cloud's own uuids."""
    return f"guest:{instance_id}"


def _service(guest: Row, server: Row, now: float) -> ServiceStatus:
    """The datastore's status on a server that exists."""
    if server_status(server, now) not in _REACHABLE:
        return ServiceStatus.SHUTDOWN
    boot_at = server.data.get("boot_at")
    if boot_at is not None and guest.data["changed_at"] < boot_at <= now:
        return ServiceStatus.RUNNING
    return ServiceStatus(pending(guest.data, now) or guest.data["status"])


def find_guest(tx: Tx, instance_id: str) -> Row | None:
    return tx.get(GUEST, _key(instance_id))


def service_now(tx: Tx, guest: Row) -> ServiceStatus:
    """The datastore's status inside a transaction (SHUTDOWN once its server is gone)."""
    server = tx.get(SERVER, str(guest.parent))
    return ServiceStatus.SHUTDOWN if server is None else _service(guest, server, tx.now)


def wal_in(tx: Tx, guest: Row) -> int:
    """A member's WAL position inside a transaction (see `replication_status`)."""
    if guest.data.get("lsn") is not None or guest.data.get("role") != Role.REPLICA.value:
        return int(guest.data.get("lsn") or 0)
    primary = tx.get(GUEST, _key(str(guest.data.get("primary"))))
    return int(primary.data.get("lsn") or 0) if primary is not None else 0


def _digest(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def prepared_users(cloud: FakeCloud, instance_id: str) -> dict[str, str]:
    """For tests: the users a fake datastore was prepared with, each with its password's
    sha256 (the fake keeps no password). Not a driver method: no call is counted."""
    data = cloud.peek(GUEST, _key(instance_id)) or {}
    return dict(data.get("user_digests", {}))


class FakeGuest(GuestDriver):
    def __init__(self, cloud: FakeCloud) -> None:
        self._cloud = cloud

    def _call(self, method: str) -> AbstractContextManager[Tx]:
        return self._cloud.call(f"guest.{method}")

    def prepare(
        self,
        instance_id: str,
        *,
        server_id: str,
        spec: InstanceSpec,
        replication: ReplicationSpec | None = None,
    ) -> None:
        """Start the datastore (BUILDING, then RUNNING); a repeat on the same server is a no-op."""
        with self._call("prepare") as tx:
            self._prepare(tx, instance_id, server_id, spec, replication)

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
        """`prepare`, archiving into `repository.stanza`; with `restore`, the data of a set
        of a stanza of the same project, checked by the fake repository (`GuestError`)."""
        with self._call("prepare_with_repository") as tx:
            self._prepare(tx, instance_id, server_id, spec, replication, repository, restore)

    def _prepare(
        self,
        tx: Tx,
        instance_id: str,
        server_id: str,
        spec: InstanceSpec,
        replication: ReplicationSpec | None,
        repository: RepositoryAccess | None = None,
        restore: RestoreTarget | None = None,
    ) -> None:
        server = tx.get(SERVER, server_id)
        if server is None:
            raise GuestError(f"Cannot prepare instance {instance_id}: no server {server_id}.")
        state = server_status(server, tx.now)
        if state is not ServerStatus.ACTIVE:
            raise GuestError(
                f"Cannot prepare instance {instance_id}: server {server_id} is {state.value}."
            )
        for i, user in enumerate(spec.users):
            if not user.password:  # as the agent refuses it
                raise GuestError(f"users[{i}].password must be a non-empty string")
        existing = tx.get(GUEST, _key(instance_id))
        if existing is not None and existing.parent == server_id:
            return
        tx.delete(_key(instance_id))
        data = {
            "status": ServiceStatus.RUNNING.value,
            "changed_at": tx.now,
            "datastore": spec.datastore,
            "datastore_version": spec.datastore_version,
            **settle_in(ServiceStatus.BUILDING.value, tx.now, self._cloud.latency_s),
            **self._replication_data(tx, instance_id, replication),
            **accounts.seeded(spec),
            # The users made, with their passwords' sha256 (`prepared_users`).
            "user_digests": {u.name: _digest(u.password) for u in spec.users},
        }
        if repository is not None:
            data["stanza"] = repository.stanza
            if restore is not None:
                # The repository's module reads guests (this one's helpers): imported here.
                from cellar.drivers.fake.backup import restored

                data.update(restored(tx, instance_id, repository, restore))
        tx.insert(Row(_key(instance_id), GUEST, instance_id, server_id, data))

    def status(self, instance_id: str) -> GuestStatus:
        with self._call("status") as tx:
            guest = tx.get(GUEST, _key(instance_id))
            if guest is None:
                return GuestStatus(ServiceStatus.NEW, None)
            server = tx.get(SERVER, str(guest.parent))
            if server is None:
                return GuestStatus(ServiceStatus.SHUTDOWN, tx.now - guest.data["changed_at"])
            return GuestStatus(_service(guest, server, tx.now), 0.0)

    def stop_db(self, instance_id: str) -> None:
        with self._call("stop_db") as tx:
            guest, _ = self._reachable(tx, instance_id)
            self._become(tx, guest, ServiceStatus.SHUTDOWN)

    def start_db(self, instance_id: str) -> None:
        with self._call("start_db") as tx:
            guest, server = self._reachable(tx, instance_id)
            self._become(tx, guest, ServiceStatus.RUNNING, _service(guest, server, tx.now))

    def restart(self, instance_id: str) -> None:
        with self._call("restart") as tx:
            guest, _ = self._reachable(tx, instance_id)
            # The restart-only settings take their file's values.
            overrides = dict(guest.data.get("overrides") or {})
            tx.update(guest.changed(started=overrides, started_at=tx.now))
            guest = tx.get(GUEST, _key(instance_id)) or guest
            self._become(tx, guest, ServiceStatus.RUNNING, ServiceStatus.SHUTDOWN)

    # Configuration groups: the overrides "file" and, for the settings PostgreSQL takes
    # only at a start, the values the datastore started with (`started`).

    def update_overrides(self, instance_id: str, values: dict[str, str]) -> list[str]:
        with self._call("update_overrides") as tx:
            guest, server = self._reachable(tx, instance_id)
            started = _started(guest, server, tx.now)
            tx.update(guest.changed(overrides=dict(values), started=started, started_at=tx.now))
            return _pending_restart(guest.data, values, started)

    def unassign_configuration(self, instance_id: str) -> list[str]:
        return self.update_overrides(instance_id, {})

    def configuration(self, instance_id: str) -> dict[str, str]:
        with self._call("configuration") as tx:
            guest, server = self._reachable(tx, instance_id)
            overrides = dict(guest.data.get("overrides") or {})
            started = _started(guest, server, tx.now)
            static = _restart_only(guest.data)
            live = {k: v for k, v in overrides.items() if k not in static}
            return {**live, **{k: v for k, v in started.items() if k in static}}

    def resize_fs(self, instance_id: str) -> None:
        with self._call("resize_fs") as tx:
            self._reachable(tx, instance_id)

    def enable_root(self, instance_id: str, *, password: str | None = None) -> tuple[str, str]:
        with self._accounts("enable_root", instance_id, write=True):
            return SUPERUSER, password or secrets.token_urlsafe(18)

    # Users and databases (`cellar.drivers.fake.accounts`): kept in the guest's row, a
    # replica's read from its primary's; what PostgreSQL refuses is refused.

    def _accounts(
        self, method: str, instance_id: str, *, write: bool = False
    ) -> AbstractContextManager[accounts.Objects]:
        return accounts.session(self._call(method), instance_id, write=write, reach=self._reachable)

    def list_databases(self, instance_id: str) -> list[DatabaseInfo]:
        with self._accounts("list_databases", instance_id) as objects:
            return objects.list_databases()

    def create_databases(self, instance_id: str, databases: Sequence[DatabaseSpec]) -> None:
        with self._accounts("create_databases", instance_id, write=True) as objects:
            objects.create_databases(databases)

    def delete_database(self, instance_id: str, name: str) -> None:
        with self._accounts("delete_database", instance_id, write=True) as objects:
            objects.delete_database(name)

    def list_users(self, instance_id: str) -> list[UserInfo]:
        with self._accounts("list_users", instance_id) as objects:
            return objects.list_users()

    def create_users(self, instance_id: str, users: Sequence[UserSpec]) -> None:
        with self._accounts("create_users", instance_id, write=True) as objects:
            objects.create_users(users)

    def delete_user(self, instance_id: str, name: str) -> None:
        with self._accounts("delete_user", instance_id, write=True) as objects:
            objects.delete_user(name)

    def update_user(
        self, instance_id: str, name: str, *, new_name: str | None, password: str | None
    ) -> None:
        with self._accounts("update_user", instance_id, write=True) as objects:
            objects.update_user(name, new_name)

    def change_passwords(self, instance_id: str, users: Sequence[tuple[str, str]]) -> None:
        with self._accounts("change_passwords", instance_id, write=True) as objects:
            objects.change_passwords([name for name, _ in users])

    def grant_access(self, instance_id: str, name: str, databases: Sequence[str]) -> None:
        with self._accounts("grant_access", instance_id, write=True) as objects:
            objects.grant(name, databases)

    def revoke_access(self, instance_id: str, name: str, database: str) -> None:
        with self._accounts("revoke_access", instance_id, write=True) as objects:
            objects.revoke(name, database)

    def disable_root(self, instance_id: str) -> None:
        with self._accounts("disable_root", instance_id, write=True):
            pass

    # Replication: roles and slots kept in the guest rows; what PostgreSQL refuses is
    # refused (a replica whose primary does not answer, a promote of a primary).

    def replication_password(self, group_id: str) -> str:
        return hashlib.sha256(f"fake-replication:{group_id}".encode()).hexdigest()[:32]

    def _replication_data(
        self, tx: Tx, instance_id: str, replication: ReplicationSpec | None
    ) -> JSON:
        if replication is None:
            return {}
        primary_id = None
        if replication.role is Role.REPLICA:
            primary = self._at_address(tx, replication.primary_address or "")
            if primary is None or primary.data.get("role") != Role.PRIMARY.value:
                raise GuestError(
                    f"Cannot prepare instance {instance_id}: no primary answers at "
                    f"{replication.primary_address}:{replication.primary_port}."
                )
            primary_id = primary.name
        return {"role": replication.role.value, "primary": primary_id, "slot": replication.slot}

    def _at_address(self, tx: Tx, address: str) -> Row | None:
        for guest in tx.all(GUEST):
            server = tx.get(SERVER, str(guest.parent))
            if server is not None and address in server.data.get("addresses", []):
                return guest
        return None

    def replication_status(self, instance_id: str) -> ReplicationStatus:
        """WAL positions: a primary's own (`set_wal`); a replica's its own if set, else
        its primary's (it streams without delay)."""
        with self._call("replication_status") as tx:
            guest, _ = self._reachable(tx, instance_id)
            role = Role(guest.data.get("role") or Role.PRIMARY.value)
            lsn = int(guest.data.get("lsn") or 0)
            if role is Role.REPLICA:
                if guest.data.get("lsn") is None:
                    primary = tx.get(GUEST, _key(str(guest.data.get("primary"))))
                    lsn = int(primary.data.get("lsn") or 0) if primary is not None else 0
                return ReplicationStatus(role, lsn=lsn, timeline=1, receive_lsn=lsn)
            replicas = tuple(
                ReplicaLag(
                    str(g.data.get("slot")), True, None, "streaming",
                    max(0, lsn - wal_in(tx, g)),
                )
                for g in tx.all(GUEST)
                if g.data.get("primary") == instance_id
            )  # fmt: skip
            return ReplicationStatus(role, lsn=lsn, timeline=1, replicas=replicas)

    def archive_into(self, instance_id: str, repository: RepositoryAccess) -> None:
        with self._call("archive_into") as tx:
            guest, _ = self._reachable(tx, instance_id)
            if service_now(tx, guest) is not ServiceStatus.RUNNING:
                raise GuestError(f"Cannot reconfigure instance {instance_id}: it is not running.")
            tx.update(guest.changed(stanza=repository.stanza))

    def promote(self, instance_id: str) -> None:
        with self._call("promote") as tx:
            guest, _ = self._reachable(tx, instance_id)
            if guest.data.get("role") != Role.REPLICA.value:
                raise GuestError(f"Instance {instance_id} is not a replica: nothing to promote.")
            if service_now(tx, guest) is not ServiceStatus.RUNNING:
                raise GuestError(f"Cannot promote instance {instance_id}: it is not running.")
            lsn = wal_in(tx, guest)
            # Its users and databases were its primary's (replicated): now its own.
            primary = find_guest(tx, str(guest.data.get("primary")))
            copied = accounts.Objects(primary.data if primary else guest.data).data()
            tx.update(guest.changed(role=Role.PRIMARY.value, primary=None, lsn=lsn, **copied))

    def make_replication_source(self, instance_id: str, replication: ReplicationSpec) -> None:
        with self._call("make_replication_source") as tx:
            guest, _ = self._reachable(tx, instance_id)
            if guest.data.get("role") == Role.REPLICA.value:
                raise GuestError(f"Instance {instance_id} is a replica: it is no source.")
            tx.update(guest.changed(role=Role.PRIMARY.value))

    def follow(self, instance_id: str, replication: ReplicationSpec) -> None:
        """Stream from the primary at the address (a stopped former primary is started as
        its standby); refused when no primary answers there."""
        with self._call("follow") as tx:
            guest, _ = self._reachable(tx, instance_id)
            primary = self._at_address(tx, replication.primary_address or "")
            if (
                primary is None
                or primary.name == guest.name
                or (primary.data.get("role") not in (None, Role.PRIMARY.value))
            ):
                raise GuestError(
                    f"Instance {instance_id} cannot follow {replication.primary_address}: "
                    "no primary answers there."
                )
            tx.update(
                guest.changed(
                    role=Role.REPLICA.value,
                    primary=primary.name,
                    slot=replication.slot,
                    lsn=None,
                    status=ServiceStatus.RUNNING.value,
                    changed_at=tx.now,
                    pending=None,
                    until=None,
                )
            )

    def stopped_lsn(self, instance_id: str) -> int:
        with self._call("stopped_lsn") as tx:
            guest, _ = self._reachable(tx, instance_id)
            if service_now(tx, guest) is not ServiceStatus.SHUTDOWN:
                raise GuestError(f"The datastore of instance {instance_id} is running.")
            return int(guest.data.get("lsn") or 0)

    def drop_replication_slot(self, instance_id: str, slot: str) -> None:
        with self._call("drop_replication_slot") as tx:
            self._reachable(tx, instance_id)

    def forget(self, instance_id: str) -> None:
        with self._call("forget") as tx:
            tx.delete(_key(instance_id))

    def _reachable(self, tx: Tx, instance_id: str) -> tuple[Row, Row]:
        """The prepared guest of `instance_id` and its server, or `GuestError`."""
        guest = tx.get(GUEST, _key(instance_id))
        if guest is None:
            raise GuestError(f"Instance {instance_id} has no guest: it was never prepared.")
        server = tx.get(SERVER, str(guest.parent))
        state = ServerStatus.DELETED if server is None else server_status(server, tx.now)
        if server is None or state not in _REACHABLE:
            raise GuestError(
                f"The guest of instance {instance_id} is unreachable: "
                f"server {guest.parent} is {state.value}."
            )
        return guest, server

    def _become(
        self, tx: Tx, guest: Row, status: ServiceStatus, meanwhile: ServiceStatus | None = None
    ) -> None:
        """Set the datastore's status, reached after the latency if `meanwhile` is given."""
        changes: JSON = {"pending": None, "until": None}
        if meanwhile is not None:
            changes = settle_in(meanwhile.value, tx.now, self._cloud.latency_s)
        tx.update(guest.changed(status=status.value, changed_at=tx.now, **changes))


def _restart_only(data: JSON) -> set[str]:
    catalogue = load_catalogue(str(data.get("datastore")), str(data.get("datastore_version")))
    return {n for n, p in (catalogue or {}).items() if p.restart_required}


def _started(guest: Row, server: Row, now: float) -> dict[str, str]:
    """The overrides the datastore last started with: a reboot of its server since the
    last restart or change starts it with the current ones."""
    boot_at = server.data.get("boot_at")
    if boot_at is not None and float(guest.data.get("started_at") or 0.0) < boot_at <= now:
        return dict(guest.data.get("overrides") or {})
    return dict(guest.data.get("started") or {})


def _pending_restart(data: JSON, values: dict[str, str], started: dict[str, str]) -> list[str]:
    """The restart-only settings whose file value is not the one the datastore runs."""
    static = _restart_only(data)
    return sorted(
        n for n in static & (set(values) | set(started)) if values.get(n) != started.get(n)
    )


def set_wal(cloud: FakeCloud, instance_id: str, lsn: int | None) -> None:
    """The fake's stand-in for writes, for tests: a member's WAL position (a replica's then
    stays there instead of following its primary's; None: it follows again)."""
    with cloud.call("guest.set_wal") as tx:
        guest = tx.get(GUEST, _key(instance_id))
        if guest is None:
            raise GuestError(f"Instance {instance_id} has no guest.")
        tx.update(guest.changed(lsn=lsn))
