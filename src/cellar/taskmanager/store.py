"""The database behind the resource managers' `InstanceStore`, and the task manager's
own lifecycle writes (task changes, faults, events).

These run several times per step of every flow, so they use SQLAlchemy Core on short
connections rather than ORM sessions (measured: about a third of a create's time went
to ORM session overhead); task changes keep going through `db.instances.change_task`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, select, update
from sqlalchemy.orm import Session, sessionmaker

from cellar.db import backups as backups_repo
from cellar.db import clusters as clusters_repo
from cellar.db import instances as repo
from cellar.db.engine import READONLY, transaction, write_lock
from cellar.db.events import event_insert
from cellar.db.models import Backup, Instance, SecurityGroup, SecurityGroupRule
from cellar.domain.backups import BackupStatus
from cellar.domain.clusters import ClusterTask
from cellar.domain.errors import NotFound
from cellar.domain.specs import RuleSpec
from cellar.domain.status import InstanceTask, ServerStatus, ServiceStatus
from cellar.resource_managers.base import InstanceRecord, RuleRecord

INSTANCES = cast(Table, Instance.__table__)
GROUPS = cast(Table, SecurityGroup.__table__)
RULES = cast(Table, SecurityGroupRule.__table__)


def _record(row: Any) -> InstanceRecord:
    return InstanceRecord(
        id=row.id,
        name=row.name,
        flavor_id=row.flavor_id,
        volume_size=row.volume_size,
        provisioning_engine=row.provisioning_engine,
        compute_instance_id=row.compute_instance_id,
        volume_id=row.volume_id,
        security_group_id=row.security_group_id,
        dns_record_id=row.dns_record_id,
        stack_id=row.stack_id,
        addresses=tuple(row.addresses or ()),
        task=row.task_status,
        server_status=ServerStatus(row.server_status) if row.server_status else None,
        service_status=ServiceStatus(row.service_status),
        created=row.created,
        cluster_id=row.cluster_id,
        replica_of=row.replica_of_id,
        project_id=row.tenant_id,
    )


class DbInstanceStore:
    """`InstanceStore` over cellar's database; every call is its own transaction."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.engine: Engine = sessions.kw["bind"]
        self.reader = self.engine.execution_options(**{READONLY: True})

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with write_lock(self.engine), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.reader.begin() as conn:
            yield conn

    def _update(self, instance_id: str, **values: Any) -> None:
        with self._write() as conn:
            conn.execute(
                update(INSTANCES)
                .where(INSTANCES.c.id == instance_id)
                .values(updated=repo.utcnow(), **values)
            )

    def get(self, instance_id: str) -> InstanceRecord:
        with self._read() as conn:
            row = conn.execute(select(INSTANCES).where(INSTANCES.c.id == instance_id)).first()
        if row is None:
            raise NotFound("Instance", instance_id)
        return _record(row)

    def cluster_members(self, cluster_id: str) -> tuple[InstanceRecord, ...]:
        with self._read() as conn:
            rows = conn.execute(
                select(INSTANCES)
                .where(INSTANCES.c.cluster_id == cluster_id, INSTANCES.c.deleted.is_(False))
                .order_by(INSTANCES.c.created, INSTANCES.c.id)
            ).all()
        records = [_record(r) for r in rows]
        return tuple(sorted(records, key=lambda r: r.replica_of is not None))

    def record_resources(self, instance_id: str, **ids: Any) -> None:
        if "task_status" in ids:
            raise ValueError("task_status changes go through change_task")
        with self._write() as conn:
            conn.execute(
                update(INSTANCES)
                .where(INSTANCES.c.id == instance_id)
                .values(updated=repo.utcnow(), **ids)
            )
            if "security_group_id" in ids:
                conn.execute(
                    update(GROUPS)
                    .where(GROUPS.c.instance_id == instance_id)
                    .values(provider_id=ids["security_group_id"])
                )

    def record_cluster_stack(self, cluster_id: str, stack_id: str | None) -> None:
        with transaction(self.sessions) as s:
            clusters_repo.update_cluster(s, cluster_id=cluster_id, stack_id=stack_id)

    def set_server_status(self, instance_id: str, status: ServerStatus | None) -> None:
        self._update(instance_id, server_status=status.value if status else None)

    def set_service_status(self, instance_id: str, status: ServiceStatus) -> None:
        self._update(instance_id, service_status=status.value, service_updated_at=repo.utcnow())

    def set_flavor(self, instance_id: str, flavor_id: str) -> None:
        self._update(instance_id, flavor_id=flavor_id)

    def set_volume_size(self, instance_id: str, size_gb: int) -> None:
        self._update(instance_id, volume_size=size_gb)

    def is_deleting(self, instance_id: str) -> bool:
        with self._read() as conn:
            task = conn.execute(
                select(INSTANCES.c.task_status).where(INSTANCES.c.id == instance_id)
            ).scalar_one_or_none()
        return task in (InstanceTask.DELETING.value, InstanceTask.DELETED.value)

    def set_rule_provider_id(self, rule_id: str, provider_id: str | None) -> None:
        with self._write() as conn:
            conn.execute(update(RULES).where(RULES.c.id == rule_id).values(provider_id=provider_id))

    def rule(self, rule_id: str) -> RuleRecord:
        with self._read() as conn:
            row = conn.execute(select(RULES).where(RULES.c.id == rule_id)).first()
        if row is None:
            raise NotFound("Security group rule", rule_id)
        return RuleRecord(
            id=row.id,
            protocol=row.protocol,
            from_port=row.from_port,
            to_port=row.to_port,
            cidr=row.cidr,
            provider_id=row.provider_id,
        )

    def rule_provider_id(self, rule_id: str) -> str | None:
        return self.rule(rule_id).provider_id

    def update_rule(self, rule_id: str, *, cidr: str, provider_id: str | None) -> None:
        with self._write() as conn:
            conn.execute(
                update(RULES)
                .where(RULES.c.id == rule_id)
                .values(cidr=cidr, provider_id=provider_id)
            )

    def record_group_rules(self, instance_id: str, rules: list[tuple[RuleSpec, str]]) -> None:
        with self._write() as conn:
            rows = conn.execute(
                select(RULES)
                .join(GROUPS, GROUPS.c.id == RULES.c.group_id)
                .where(GROUPS.c.instance_id == instance_id, RULES.c.deleted.is_(False))
            ).all()
            by_key = {(r.protocol, r.from_port, r.to_port, r.cidr): r.id for r in rows}
            for spec, provider_id in rules:
                row_id = by_key.get((spec.protocol, spec.from_port, spec.to_port, spec.cidr))
                if row_id is not None:
                    conn.execute(
                        update(RULES).where(RULES.c.id == row_id).values(provider_id=provider_id)
                    )

    # The task manager's own writes (not part of the resource managers' protocol).

    def change_task(self, instance_id: str, target: InstanceTask, **values: Any) -> None:
        with transaction(self.sessions) as s:
            repo.change_task(s, instance_id=instance_id, target=target, **values)

    def record_fault(self, instance_id: str, message: str, details: str) -> None:
        self._update(
            instance_id, fault_message=message, fault_details=details, fault_at=repo.utcnow()
        )

    def mark_deleted(self, instance_id: str) -> None:
        with transaction(self.sessions) as s:
            repo.change_task(
                s,
                instance_id=instance_id,
                target=InstanceTask.DELETED,
                deleted=True,
                deleted_at=repo.utcnow(),
                service_status=ServiceStatus.DELETED.value,
                server_status=None,
            )
            groups = select(SecurityGroup.id).where(SecurityGroup.instance_id == instance_id)
            s.execute(
                update(SecurityGroupRule)
                .where(SecurityGroupRule.group_id.in_(groups))
                .values(deleted=True)
            )
            s.execute(
                update(SecurityGroup)
                .where(SecurityGroup.instance_id == instance_id)
                .values(deleted=True)
            )

    def add_event(self, **fields: Any) -> None:
        """One event row (`db.events.event_insert`'s fields), in its own transaction."""
        with self._write() as conn:
            conn.execute(event_insert(**fields))

    # Clusters (their jobs carry the cluster's id in `jobs.instance_id`).

    def cluster_task(self, cluster_id: str) -> ClusterTask:
        with transaction(self.sessions, readonly=True) as s:
            row = clusters_repo.get_cluster(s, cluster_id=cluster_id, deleted=True)
            return ClusterTask.named(row.task_status)

    def mark_cluster_deleted(self, cluster_id: str) -> None:
        self.change_cluster_task(
            cluster_id, ClusterTask.DELETED, deleted=True, deleted_at=repo.utcnow()
        )

    def change_cluster_task(self, cluster_id: str, target: ClusterTask, **values: Any) -> None:
        with transaction(self.sessions) as s:
            clusters_repo.change_cluster_task(s, cluster_id=cluster_id, target=target, **values)

    def record_cluster_fault(self, cluster_id: str, message: str, details: str) -> None:
        with transaction(self.sessions) as s:
            clusters_repo.update_cluster(
                s,
                cluster_id=cluster_id,
                fault_message=message,
                fault_details=details,
                fault_at=repo.utcnow(),
            )

    def finish_member(self, instance_id: str) -> None:
        """A member built (or changed) by a cluster job is idle again."""
        self.change_task(instance_id, InstanceTask.NONE, fault_message=None, fault_details=None)

    # Backups.

    def update_backup(self, backup_id: str, **values: Any) -> None:
        if values.get("deleted"):
            values.setdefault("deleted_at", repo.utcnow())
        with transaction(self.sessions) as s:
            backups_repo.update_backup(s, backup_id=backup_id, **values)

    def backup_source(self, backup_id: str) -> tuple[str, str, str | None]:
        """The instance a backup was taken of (it may be gone), the stanza it went into
        and the set's label."""
        with transaction(self.sessions, readonly=True) as s:
            row = s.get(Backup, backup_id)
            if row is None:
                raise NotFound("Backup", backup_id)
            return row.instance_id, row.stanza, row.label

    def forget_backups_without(self, instance_id: str, kept: set[str]) -> list[str]:
        """Mark DELETED the instance's completed backups whose set is no longer kept;
        their ids."""
        with transaction(self.sessions) as s:
            rows = backups_repo.list_backups(s, project_id=None, instance_id=instance_id)
            gone = [r for r in rows if r.label is not None and r.label not in kept
                    and r.state == BackupStatus.COMPLETED.value]  # fmt: skip
            for row in gone:
                backups_repo.update_backup(
                    s, backup_id=row.id, state=BackupStatus.DELETED.value, deleted=True,
                    deleted_at=repo.utcnow(),
                )  # fmt: skip
            return [r.id for r in gone]
