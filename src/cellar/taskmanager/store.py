"""The database behind the resource managers' `InstanceStore`, and the task manager's
own lifecycle writes (task changes, faults, events)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from cellar.db import instances as repo
from cellar.db.engine import transaction
from cellar.db.models import Event, SecurityGroup, SecurityGroupRule
from cellar.domain.errors import NotFound
from cellar.domain.specs import RuleSpec
from cellar.domain.status import InstanceTask, ServerStatus, ServiceStatus
from cellar.resource_managers.base import InstanceRecord, RuleRecord


class DbInstanceStore:
    """`InstanceStore` over cellar's database; every call is its own transaction."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def get(self, instance_id: str) -> InstanceRecord:
        with transaction(self.sessions) as s:
            row = repo.get_instance(s, instance_id=instance_id, deleted=True)
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
            )

    def record_resources(self, instance_id: str, **ids: Any) -> None:
        with transaction(self.sessions) as s:
            repo.update_instance(s, instance_id=instance_id, **ids)
            if "security_group_id" in ids:
                s.execute(
                    update(SecurityGroup)
                    .where(SecurityGroup.instance_id == instance_id)
                    .values(provider_id=ids["security_group_id"])
                )

    def set_server_status(self, instance_id: str, status: ServerStatus | None) -> None:
        with transaction(self.sessions) as s:
            repo.update_instance(
                s, instance_id=instance_id, server_status=status.value if status else None
            )

    def set_service_status(self, instance_id: str, status: ServiceStatus) -> None:
        with transaction(self.sessions) as s:
            repo.update_instance(
                s,
                instance_id=instance_id,
                service_status=status.value,
                service_updated_at=repo.utcnow(),
            )

    def set_flavor(self, instance_id: str, flavor_id: str) -> None:
        with transaction(self.sessions) as s:
            repo.update_instance(s, instance_id=instance_id, flavor_id=flavor_id)

    def set_volume_size(self, instance_id: str, size_gb: int) -> None:
        with transaction(self.sessions) as s:
            repo.update_instance(s, instance_id=instance_id, volume_size=size_gb)

    def is_deleting(self, instance_id: str) -> bool:
        with transaction(self.sessions) as s:
            row = repo.get_instance(s, instance_id=instance_id, deleted=True)
            return row.task_status in (InstanceTask.DELETING.value, InstanceTask.DELETED.value)

    def set_rule_provider_id(self, rule_id: str, provider_id: str | None) -> None:
        with transaction(self.sessions) as s:
            s.execute(
                update(SecurityGroupRule)
                .where(SecurityGroupRule.id == rule_id)
                .values(provider_id=provider_id)
            )

    def rule(self, rule_id: str) -> RuleRecord:
        with transaction(self.sessions) as s:
            row = s.get(SecurityGroupRule, rule_id)
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
        with transaction(self.sessions) as s:
            s.execute(
                update(SecurityGroupRule)
                .where(SecurityGroupRule.id == rule_id)
                .values(cidr=cidr, provider_id=provider_id)
            )

    def record_group_rules(self, instance_id: str, rules: list[tuple[RuleSpec, str]]) -> None:
        with transaction(self.sessions) as s:
            rows = s.scalars(
                select(SecurityGroupRule)
                .join(SecurityGroup, SecurityGroup.id == SecurityGroupRule.group_id)
                .where(SecurityGroup.instance_id == instance_id, ~SecurityGroupRule.deleted)
            ).all()
            by_key = {(r.protocol, r.from_port, r.to_port, r.cidr): r for r in rows}
            for spec, provider_id in rules:
                row = by_key.get((spec.protocol, spec.from_port, spec.to_port, spec.cidr))
                if row is not None:
                    row.provider_id = provider_id

    # The task manager's own writes (not part of the resource managers' protocol).

    def change_task(self, instance_id: str, target: InstanceTask, **values: Any) -> None:
        with transaction(self.sessions) as s:
            repo.change_task(s, instance_id=instance_id, target=target, **values)

    def record_fault(self, instance_id: str, message: str, details: str) -> None:
        with transaction(self.sessions) as s:
            repo.update_instance(
                s,
                instance_id=instance_id,
                fault_message=message,
                fault_details=details,
                fault_at=repo.utcnow(),
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

    def add_event(
        self,
        *,
        instance_id: str,
        job_id: str | None,
        operation: str,
        step: str,
        outcome: str,
        message: str = "",
        duration_ms: int | None = None,
    ) -> None:
        with transaction(self.sessions) as s:
            s.add(
                Event(
                    instance_id=instance_id,
                    job_id=job_id,
                    operation=operation,
                    step=step,
                    outcome=outcome,
                    message=message,
                    duration_ms=duration_ms,
                    created=repo.utcnow(),
                )
            )
