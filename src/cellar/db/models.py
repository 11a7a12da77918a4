"""The database rows. Schema changes go through Alembic (`db/migrations`), never create_all."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Flavor(Base):
    __tablename__ = "flavors"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    ram_mb: Mapped[int] = mapped_column(Integer)
    vcpus: Mapped[int] = mapped_column(Integer)


class Datastore(Base):
    __tablename__ = "datastores"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    default_version_id: Mapped[str | None] = mapped_column(String(36))


class DatastoreVersion(Base):
    __tablename__ = "datastore_versions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    datastore_id: Mapped[str] = mapped_column(ForeignKey("datastores.id"))
    name: Mapped[str] = mapped_column(String(255))
    manager: Mapped[str] = mapped_column(String(64))
    image: Mapped[str] = mapped_column(String(255))
    # Comma-separated TCP ports the datastore listens on (rules are made for each).
    ports: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Instance(Base):
    __tablename__ = "instances"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255))
    hostname: Mapped[str | None] = mapped_column(String(255))
    flavor_id: Mapped[str] = mapped_column(String(36))
    volume_size: Mapped[int] = mapped_column(Integer)
    datastore_version_id: Mapped[str] = mapped_column(ForeignKey("datastore_versions.id"))
    compute_instance_id: Mapped[str | None] = mapped_column(String(64))
    volume_id: Mapped[str | None] = mapped_column(String(64))
    security_group_id: Mapped[str | None] = mapped_column(String(64))
    dns_record_id: Mapped[str | None] = mapped_column(String(64))
    addresses: Mapped[list[Any]] = mapped_column(default=list)
    task_status: Mapped[str] = mapped_column(String(64))
    task_description: Mapped[str | None] = mapped_column(String(255))
    task_start_time: Mapped[datetime | None] = mapped_column(DateTime)
    server_status: Mapped[str | None] = mapped_column(String(64))
    service_status: Mapped[str] = mapped_column(String(64))
    service_updated_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The guest's clock (`sent`) on its last accepted heartbeat; None if it never sent one.
    guest_heartbeat_sent: Mapped[float | None] = mapped_column(Float)
    access: Mapped[dict[str, Any]] = mapped_column(default=dict)
    configuration_id: Mapped[str | None] = mapped_column(String(36))
    cluster_id: Mapped[str | None] = mapped_column(String(36), index=True)
    # The primary this instance replicates (Trove's `slave_of_id`); None for a primary.
    replica_of_id: Mapped[str | None] = mapped_column(String(36), index=True)
    provisioning_engine: Mapped[str] = mapped_column(
        String(36), default="native", server_default="native"
    )
    stack_id: Mapped[str | None] = mapped_column(String(36))
    fault_message: Mapped[str | None] = mapped_column(Text)
    fault_details: Mapped[str | None] = mapped_column(Text)
    fault_at: Mapped[datetime | None] = mapped_column(DateTime)
    created: Mapped[datetime] = mapped_column(DateTime)
    updated: Mapped[datetime] = mapped_column(DateTime)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)


class Backup(Base):
    """A Trove backup: one pgBackRest backup set of an instance's stanza. It outlives the
    instance (restores read the stanza); `label` is the engine's, once taken."""

    __tablename__ = "backups"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    instance_id: Mapped[str] = mapped_column(String(36), index=True)
    stanza: Mapped[str] = mapped_column(String(128))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("backups.id"))
    datastore_version_id: Mapped[str] = mapped_column(ForeignKey("datastore_versions.id"))
    # Trove's states: NEW, BUILDING, COMPLETED, FAILED, DELETE_FAILED (and DELETED).
    state: Mapped[str] = mapped_column(String(32))
    label: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    repository_bytes: Mapped[int | None] = mapped_column(BigInteger)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime)
    fail_reason: Mapped[str | None] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(DateTime)
    updated: Mapped[datetime] = mapped_column(DateTime)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)


class Configuration(Base):
    """A configuration group (Trove's): parameter values for instances of one datastore
    version; `values` as the user gave them, names lower-cased."""

    __tablename__ = "configurations"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    datastore_version_id: Mapped[str] = mapped_column(ForeignKey("datastore_versions.id"))
    values: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created: Mapped[datetime] = mapped_column(DateTime)
    updated: Mapped[datetime] = mapped_column(DateTime)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)


class BackupSchedule(Base):
    """Automated backups of one instance: one every `interval_s`, due at `next_at`; the
    engine keeps the newest `keep_full` full backups, or those of the last `keep_days`."""

    __tablename__ = "backup_schedules"
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id"), primary_key=True)
    interval_s: Mapped[int] = mapped_column(Integer)
    incremental: Mapped[bool] = mapped_column(Boolean, default=False)
    keep_full: Mapped[int | None] = mapped_column(Integer)
    keep_days: Mapped[int | None] = mapped_column(Integer)
    next_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    created: Mapped[datetime] = mapped_column(DateTime)
    updated: Mapped[datetime] = mapped_column(DateTime)


class Cluster(Base):
    """A primary and its replicas (`cellar.domain.clusters`); each member is an instance
    row with `cluster_id`, the primary the one with no `replica_of_id`."""

    __tablename__ = "clusters"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255))
    datastore_version_id: Mapped[str] = mapped_column(ForeignKey("datastore_versions.id"))
    task_status: Mapped[str] = mapped_column(String(64))
    provisioning_engine: Mapped[str] = mapped_column(String(36), default="native")
    stack_id: Mapped[str | None] = mapped_column(String(36))
    fault_message: Mapped[str | None] = mapped_column(Text)
    fault_details: Mapped[str | None] = mapped_column(Text)
    fault_at: Mapped[datetime | None] = mapped_column(DateTime)
    created: Mapped[datetime] = mapped_column(DateTime)
    updated: Mapped[datetime] = mapped_column(DateTime)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The group of a primary whose replicas came through `replica_of` (its id is the
    # primary's): not listed under /clusters, no endpoints.
    implicit: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class SecurityGroup(Base):
    __tablename__ = "security_groups"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(255), index=True)
    instance_id: Mapped[str | None] = mapped_column(ForeignKey("instances.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(String(255), default="")
    provider_id: Mapped[str | None] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(DateTime)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class SecurityGroupRule(Base):
    __tablename__ = "security_group_rules"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    group_id: Mapped[str] = mapped_column(ForeignKey("security_groups.id"), index=True)
    protocol: Mapped[str] = mapped_column(String(16))
    from_port: Mapped[int] = mapped_column(Integer)
    to_port: Mapped[int] = mapped_column(Integer)
    cidr: Mapped[str] = mapped_column(String(64))
    # The cloud's id for the rule; None until the task manager has applied it.
    provider_id: Mapped[str | None] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(DateTime)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class DNSRecord(Base):
    __tablename__ = "dns_records"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(16))
    data: Mapped[str] = mapped_column(String(255))
    provider_id: Mapped[str | None] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(DateTime)


class Event(Base):
    """One row per step of every operation, shown to users (`GET /instances/{id}/events`)."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(String(36), index=True)
    job_id: Mapped[str | None] = mapped_column(String(36))
    operation: Mapped[str] = mapped_column(String(64))
    step: Mapped[str] = mapped_column(String(128))
    outcome: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text, default="")
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    created: Mapped[datetime] = mapped_column(DateTime)


class Job(Base):
    """A unit of work for the task manager, written in the same transaction as its cause."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    instance_id: Mapped[str | None] = mapped_column(String(36), index=True)
    args: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # queued -> running -> succeeded | failed
    state: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(DateTime)
    updated: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_jobs_state_created", "state", "created"),)


class Token(Base):
    __tablename__ = "tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(DateTime)
    # Valid until then (naive UTC); a revoked token is deleted.
    expires: Mapped[datetime] = mapped_column(DateTime)


class TaskflowPath(Base):
    """TaskFlow's logbook, stored path -> JSON (see `taskmanager.persistence`)."""

    __tablename__ = "taskflow_paths"
    path: Mapped[str] = mapped_column(String(255), primary_key=True)
    parent: Mapped[str] = mapped_column(String(255), index=True)
    value: Mapped[str | None] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(255))


class Stack(Base):
    """A stack of the embedded engine (`cellar.orchestration.local.store.StackRecord`)."""

    __tablename__ = "stacks"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    template: Mapped[dict[str, Any]] = mapped_column()
    parameters: Mapped[dict[str, Any]] = mapped_column()
    action: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32), index=True)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    disable_rollback: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(DateTime)
    updated: Mapped[datetime] = mapped_column(DateTime)


class StackResource(Base):
    """One record of a stack's resource (`ResourceRecord`). A name has two records while
    it is replaced (the old one has current False), and failed replacements may leave
    several old ones, so only (stack_id, id) is unique."""

    __tablename__ = "stack_resources"
    stack_id: Mapped[str] = mapped_column(ForeignKey("stacks.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(255))
    physical_id: Mapped[str] = mapped_column(String(255), default="")
    action: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    status_reason: Mapped[str] = mapped_column(Text, default="")
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    requires: Mapped[list[Any]] = mapped_column(default=list)
    current: Mapped[bool] = mapped_column(Boolean, default=True)
    created: Mapped[datetime] = mapped_column(DateTime)
    updated: Mapped[datetime] = mapped_column(DateTime)


class StackEvent(Base):
    """One state change of a stack or of one of its resources (`EventRecord`)."""

    __tablename__ = "stack_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stack_id: Mapped[str] = mapped_column(ForeignKey("stacks.id"), index=True)
    resource_name: Mapped[str] = mapped_column(String(255))
    physical_resource_id: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    timestamp: Mapped[datetime] = mapped_column(DateTime)


class StackSignal(Base):
    """One signal a wait condition handle received (`cloud_base.SignalStore`), written by
    the API for an agent's token signal or by the engine for its owner's. A signal with the
    `signal_id` of an earlier one replaces it and keeps its place (`id`, the order)."""

    __tablename__ = "stack_signals"
    __table_args__ = (
        UniqueConstraint("handle_id", "signal_id", name="uq_stack_signals_handle_signal"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    handle_id: Mapped[str] = mapped_column(String(255))
    signal_id: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    data: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime)


class RootEnabledHistory(Base):
    """Trove's `root_enabled_history`: root was enabled on the instance at `created` by
    `user` (the project), and disabled at `deleted_at` if that came later."""

    __tablename__ = "root_enabled_history"
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id"), primary_key=True)
    user: Mapped[str] = mapped_column(String(255))
    created: Mapped[datetime] = mapped_column(DateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)


class Quota(Base):
    """A project's own limit of one resource (Trove's `quotas`); a resource without a row
    has the default of the settings."""

    __tablename__ = "quotas"
    tenant_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    resource: Mapped[str] = mapped_column(String(32), primary_key=True)
    hard_limit: Mapped[int] = mapped_column(Integer)
