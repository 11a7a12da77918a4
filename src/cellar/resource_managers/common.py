"""What every resource manager shares: the task base, retries, waits, naming and the
guest steps (prepare, wait, stop/start, restart). One place, not one copy per manager."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from taskflow import task
from taskflow.patterns import linear_flow

from cellar.domain.backups import RestoreTarget, archive_id
from cellar.domain.errors import CellarError, TransientError
from cellar.domain.replication import ReplicationSpec, Role, slot_name
from cellar.domain.specs import InstanceSpec, instance_hostname
from cellar.domain.status import ServerStatus, ServiceStatus
from cellar.drivers.guest.base import GuestStatus
from cellar.resource_managers.base import ManagerContext

T = TypeVar("T")


class OperationCancelled(CellarError):
    """The instance is being deleted: the running operation stops and reverts."""

    def __init__(self, instance_id: str) -> None:
        super().__init__(f"Instance {instance_id} is being deleted; the operation stopped.")


class StepTimeout(CellarError):
    def __init__(self, what: str, timeout_s: float, last: str) -> None:
        super().__init__(f"Timed out after {timeout_s:g} s waiting for {what} (last seen: {last}).")


class CellarTask(task.Task):  # type: ignore[misc]
    """A step of a flow: idempotent `execute`, and a `revert` that undoes it."""

    def __init__(
        self,
        ctx: ManagerContext,
        instance_id: str,
        *,
        name: str,
        provides: str | None = None,
        inject: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(name=name, provides=provides, inject=inject)
        self.ctx = ctx
        self.instance_id = instance_id

    @property
    def services(self) -> Any:
        return self.ctx.services

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a driver, retrying transient failures with a delay; permanent ones raise.

        A plain loop rather than tenacity: it runs on every driver call of every step,
        and building a retry controller each time cost more than the call itself.
        """
        settings = self.ctx.settings
        attempts = max(1, settings.retry_attempts)
        for attempt in range(1, attempts + 1):
            try:
                return fn(*args, **kwargs)
            except TransientError:
                if attempt == attempts:
                    raise
                self.ctx.sleep(settings.retry_delay_s)
        raise AssertionError("unreachable")

    def hostname(self) -> str:
        """The instance's DNS name in the deployment's zone (`InstanceSpec.hostname`)."""
        return instance_hostname(self.instance_id, self.ctx.settings.dns_zone)

    def security_group_id(self) -> str:
        group_id = self.ctx.store.get(self.instance_id).security_group_id
        if not group_id:
            raise CellarError(f"Instance {self.instance_id} has no security group.")
        return group_id

    def check_not_cancelled(self) -> None:
        if self.ctx.store.is_deleting(self.instance_id):
            raise OperationCancelled(self.instance_id)

    def wait_for(
        self,
        what: str,
        probe: Callable[[], T],
        done: Callable[[T], bool],
        *,
        timeout_s: float,
        failed: Callable[[T], str | None] = lambda _v: None,
        cancellable: bool = True,
        every_s: float | None = None,
    ) -> T:
        """Poll `probe` (every `every_s`, by default the settings' poll interval) until
        `done`; raise on `failed`, timeout, or (if cancellable) delete."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.call(probe)
            if done(value):
                return value
            reason = failed(value)
            if reason:
                raise CellarError(f"{what} failed: {reason}")
            if time.monotonic() >= deadline:
                raise StepTimeout(what, timeout_s, repr(value))
            if cancellable:
                self.check_not_cancelled()
            self.ctx.sleep(every_s if every_s is not None else self.ctx.settings.poll_interval_s)


def wait_for_service(
    t: CellarTask, wanted: ServiceStatus, *, timeout_s: float, cancellable: bool = True
) -> None:
    """Wait until the guest reports `wanted`, recording each status it reports."""
    guest = t.services.guest
    seen: list[ServiceStatus] = []

    def probe() -> GuestStatus:
        status: GuestStatus = guest.status(t.instance_id)
        if not seen or seen[-1] is not status.service:
            seen.append(status.service)
            t.ctx.store.set_service_status(t.instance_id, status.service)
        return status

    def failed(s: GuestStatus) -> str | None:
        if s.service is not ServiceStatus.FAILED:
            return None
        return f"the guest reports FAILED: {s.error}" if s.error else "the guest reports FAILED"

    t.wait_for(
        f"the datastore to be {wanted.value}",
        probe,
        lambda s: s.service is wanted,
        failed=failed,
        timeout_s=timeout_s,
        cancellable=cancellable,
    )


def wait_for_server(
    t: CellarTask, server_id: str, wanted: ServerStatus, what: str, *, cancellable: bool = True
) -> None:
    """Wait until the server is `wanted` (ERROR fails it) and record its status."""
    compute = t.services.compute
    done = t.wait_for(
        f"server {server_id} to {what}",
        lambda: compute.get_server(server_id),
        lambda s: s.status is wanted,
        failed=lambda s: "the server went to ERROR" if s.status is ServerStatus.ERROR else None,
        timeout_s=t.ctx.settings.server_timeout_s,
        cancellable=cancellable,
    )
    t.ctx.store.set_server_status(t.instance_id, done.status)


class PrepareGuest(CellarTask):
    """Ask the guest to set up the datastore (asynchronous; `WaitForGuest` follows)."""

    def __init__(self, ctx: ManagerContext, spec: InstanceSpec, *, name: str) -> None:
        super().__init__(ctx, spec.instance_id, name=name)
        self.spec = spec

    def execute(self, server_id: str) -> None:
        self.check_not_cancelled()
        status = self.call(self.services.guest.status, self.instance_id).service
        if status in (ServiceStatus.NEW, ServiceStatus.UNKNOWN):
            replication = replication_for(self.ctx, self.spec)
            backups = self.services.backup
            if backups is None and self.spec.restore_stanza is not None:
                raise CellarError("This cloud's backend has no backup repository to restore from.")
            if backups is None:
                self.call(
                    self.services.guest.prepare,
                    self.instance_id,
                    server_id=server_id,
                    spec=self.spec,
                    replication=replication,
                )
            else:
                # WAL archived into the instance's stanza (its group's, for a member)
                # from its first start; a replica archives once it is promoted.
                access = self.call(
                    backups.repository_access,
                    self.spec.project_id,
                    archive_id(self.instance_id, self.spec.replication_group),
                    member=self.instance_id,
                )
                self.call(
                    self.services.guest.prepare_with_repository,
                    self.instance_id,
                    server_id=server_id,
                    spec=self.spec,
                    repository=access,
                    restore=restore_target(self.spec),
                    replication=replication,
                )
        self.ctx.store.set_service_status(self.instance_id, ServiceStatus.BUILDING)


def replication_for(ctx: ManagerContext, spec: InstanceSpec) -> ReplicationSpec | None:
    """A member's place in its replication group, as its guest is told at prepare: the
    primary's address is read when the replica is prepared (the primary is up by then)."""
    if spec.replication_group is None:
        return None
    password = ctx.services.guest.replication_password(spec.replication_group)
    if spec.replica_of is None:
        return ReplicationSpec(Role.PRIMARY, password)
    primary = ctx.store.get(spec.replica_of)
    if not primary.addresses:
        raise CellarError(
            f"The primary {spec.replica_of} of instance {spec.instance_id} has no address."
        )
    return ReplicationSpec(
        Role.REPLICA,
        password,
        primary_address=primary.addresses[0],
        primary_port=spec.ports[0] if spec.ports else 5432,
        slot=slot_name(spec.instance_id),
    )


class WaitForGuest(CellarTask):
    """The instance is ACTIVE only when its datastore reports RUNNING."""

    def execute(self) -> None:
        wait_for_service(self, ServiceStatus.RUNNING, timeout_s=self.ctx.settings.guest_timeout_s)


class StopDatastore(CellarTask):
    """Stop the datastore before the server changes; started again if the flow reverts."""

    def execute(self) -> None:
        self.check_not_cancelled()
        self.call(self.services.guest.stop_db, self.instance_id)
        wait_for_service(self, ServiceStatus.SHUTDOWN, timeout_s=self.ctx.settings.guest_timeout_s)

    def revert(self, *args: Any, **kwargs: Any) -> None:
        self.call(self.services.guest.start_db, self.instance_id)
        wait_for_service(
            self,
            ServiceStatus.RUNNING,
            timeout_s=self.ctx.settings.guest_timeout_s,
            cancellable=False,
        )


class StartDatastore(CellarTask):
    def execute(self) -> None:
        if self.services.guest.status(self.instance_id).service is not ServiceStatus.RUNNING:
            self.call(self.services.guest.start_db, self.instance_id)
        wait_for_service(self, ServiceStatus.RUNNING, timeout_s=self.ctx.settings.guest_timeout_s)


class RestartDatastore(CellarTask):
    def execute(self) -> None:
        self.check_not_cancelled()
        self.call(self.services.guest.restart, self.instance_id)
        wait_for_service(self, ServiceStatus.RUNNING, timeout_s=self.ctx.settings.guest_timeout_s)


def restart_flow(ctx: ManagerContext, instance_id: str) -> linear_flow.Flow:
    """Restart the datastore: a guest task, the same under every resource manager."""
    return linear_flow.Flow("restart").add(
        RestartDatastore(ctx, instance_id, name="datastore.restart")
    )


class CreateStanza(CellarTask):
    """Once the datastore runs: its stanza in the backup repository (archiving waits for
    it, the WAL kept in pg_wal meanwhile); a group's stanza is made by its primary, its
    replicas find it there. Nothing where the backend has no repository."""

    def __init__(self, ctx: ManagerContext, spec: InstanceSpec, *, name: str) -> None:
        super().__init__(ctx, spec.instance_id, name=name)
        self.spec = spec

    def execute(self) -> None:
        backups = self.services.backup
        if backups is None or self.spec.replica_of is not None:
            return
        archive = archive_id(self.instance_id, self.spec.replication_group)
        self.call(backups.create_stanza, archive, primary=self.instance_id)


def restore_target(spec: InstanceSpec) -> RestoreTarget | None:
    """What the instance is restored from (`restorePoint`), if anything."""
    if spec.restore_stanza is None:
        return None
    instant = None if spec.restore_time is None else datetime.fromisoformat(spec.restore_time)
    return RestoreTarget(spec.restore_stanza, label=spec.restore_label, target_time=instant)
