"""Failover jobs, asked by a user (`eject_replica_source`) or by the task manager itself.

Automatic failover (`cluster_auto_failover`, off by default) is a watch every task
manager runs: each idle cluster's primary is asked where its WAL stands every
`cluster_watch_interval_s`. When it has not answered for `cluster_failover_after_s` and
its guest has not reported for as long (a primary that is only slow to answer, or only
slow to report, is not failed over), a failover job is written: fence the old primary,
promote the most advanced replica. The job is a compare-and-set on the cluster's task,
so of several task managers watching the same cluster exactly one writes it; the last
position the watch saw the primary at goes with it, and the cluster's events record the
WAL the failover may have lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from cellar.config import Settings
from cellar.db import catalog
from cellar.db import clusters as repo
from cellar.db import instances as instances_repo
from cellar.db.engine import transaction
from cellar.db.jobs import submit_job
from cellar.db.models import Cluster, Instance
from cellar.domain.clusters import ClusterTask
from cellar.domain.errors import BadRequest, CellarError, UnprocessableEntity
from cellar.domain.status import InstanceTask
from cellar.drivers.base import DriverError
from cellar.drivers.guest.base import GuestDriver
from cellar.taskmanager.kinds import JobKind

log = logging.getLogger(__name__)

_IDLE = (InstanceTask.NONE.value, InstanceTask.RESTART_REQUIRED.value)


def port_of(session: Session, cluster: Cluster) -> int:
    """The datastore's port (replication connects to it)."""
    version = catalog.get_version_by_id(session, version_id=cluster.datastore_version_id)
    ports = catalog.version_ports(version)
    return ports[0] if ports else 5432


def check_idle(members: Sequence[Instance], field: str) -> None:
    for member in members:
        if member.task_status not in _IDLE:
            raise UnprocessableEntity(
                f"{field}: member {member.name} ({member.id}) is {member.task_status}; "
                "wait until every member is idle"
            )


def take_cluster(session: Session, cluster: Cluster, task: ClusterTask) -> None:
    """The cluster's task, as a compare-and-set against the task read (409 on a race)."""
    repo.change_cluster_task(
        session, cluster_id=cluster.id, target=task, expected=ClusterTask.named(cluster.task_status)
    )


def submit_failover(
    session: Session,
    *,
    cluster: Cluster,
    primary: Instance,
    reason: str,
    last_primary_lsn: int | None = None,
) -> None:
    """Fence `primary` (which does not answer: the caller checked) and promote the most
    advanced replica; refused for a replica, a primary without replicas, or while a
    replica is busy."""
    field = "eject_replica_source"
    if primary.replica_of_id is not None:
        raise BadRequest(field, f"instance {primary.id} is a replica, not the replica source")
    replicas = [m for m in repo.members(session, cluster_id=cluster.id) if m.id != primary.id]
    if not replicas:
        raise BadRequest(field, f"instance {primary.id} has no replica to take its place")
    check_idle(replicas, field)
    take_cluster(session, cluster, ClusterTask.PROMOTING)
    instances_repo.change_task(session, instance_id=primary.id, target=InstanceTask.EJECTING)
    submit_job(
        session,
        kind=JobKind.FAILOVER_CLUSTER.value,
        instance_id=cluster.id,
        args={
            "old_primary": primary.id,
            "replicas": [m.id for m in replicas],
            "port": port_of(session, cluster),
            "reason": reason,
            "last_primary_lsn": last_primary_lsn,
        },
    )


@dataclass
class _Seen:
    """What the watch knows of one cluster's primary."""

    primary_id: str
    lsn: int | None = None
    silent_since: float | None = None


@dataclass
class ClusterWatch:
    """One pass per call of `check`; the caller's loop paces it."""

    settings: Settings
    sessions: sessionmaker[Session]
    guest: GuestDriver
    clock: Callable[[], float] = time.monotonic
    seen: dict[str, _Seen] = field(default_factory=dict)

    def check(self) -> list[str]:
        """Watch every idle cluster once; the ids of the clusters failed over now."""
        with transaction(self.sessions, readonly=True) as s:
            clusters = [c for c in repo.list_clusters(s, project_id=None, implicit=True)
                        if c.task_status == ClusterTask.NONE.value.name]  # fmt: skip
            primaries = {c.id: _primary(repo.members(s, cluster_id=c.id)) for c in clusters}
        failed = []
        for cluster in clusters:
            primary = primaries[cluster.id]
            if primary is None or primary.task_status not in _IDLE:
                self.seen.pop(cluster.id, None)
                continue
            if self._dead(cluster.id, primary.id) and self._fail_over(cluster.id, primary.id):
                failed.append(cluster.id)
        for gone in set(self.seen) - {c.id for c in clusters}:
            del self.seen[gone]
        return failed

    def _dead(self, cluster_id: str, primary_id: str) -> bool:
        seen = self.seen.get(cluster_id)
        if seen is None or seen.primary_id != primary_id:
            seen = self.seen[cluster_id] = _Seen(primary_id)
        asked = self.clock()
        try:
            seen.lsn = self.guest.replication_status(primary_id).lsn
            seen.silent_since = None
            return False
        except (DriverError, CellarError):
            if seen.silent_since is None:
                seen.silent_since = asked
                log.warning("the primary %s of cluster %s does not answer", primary_id, cluster_id)
        # After the probe: a dead agent's probe itself takes seconds (connection retries).
        now = self.clock()
        after = self.settings.cluster_failover_after_s
        if now - seen.silent_since < after:
            return False
        try:
            age = self.guest.status(primary_id).age_s
        except (DriverError, CellarError):
            age = None
        return age is None or age >= after

    def _fail_over(self, cluster_id: str, primary_id: str) -> bool:
        seen = self.seen.pop(cluster_id)
        silent = self.clock() - (seen.silent_since or self.clock())
        reason = f"automatic failover: the primary did not answer for {silent:.0f} s"
        try:
            with transaction(self.sessions) as s:
                cluster = repo.get_cluster(s, cluster_id=cluster_id)
                primary = instances_repo.get_instance(s, instance_id=primary_id)
                submit_failover(
                    s, cluster=cluster, primary=primary, reason=reason, last_primary_lsn=seen.lsn
                )
        except CellarError as exc:  # another task manager (or a user) acted first
            log.info("no failover of cluster %s: %s", cluster_id, exc)
            return False
        log.warning("cluster %s: %s; failing over", cluster_id, reason)
        return True


def _primary(members: Sequence[Instance]) -> Instance | None:
    return next((m for m in members if m.replica_of_id is None), None)
