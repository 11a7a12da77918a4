"""Cluster jobs: the resource manager's cluster flow wrapped in the lifecycle steps of the
cluster and of its members, and what a failure leaves behind.

A failed build or grow is reverted by its flow (every member step removes what it made),
then the cluster is ERROR with the fault and its new members ERROR: nothing is left on
the cloud, and a delete (or a shrink of the failed members) cleans up the rows.
"""

from __future__ import annotations

from typing import Any

from taskflow import task

from cellar.db import clusters as clusters_repo
from cellar.db.engine import transaction
from cellar.db.models import Job
from cellar.domain.clusters import ClusterTask, Endpoints, endpoints
from cellar.domain.errors import CellarError
from cellar.domain.specs import spec_from_dict
from cellar.domain.status import InstanceTask
from cellar.resource_managers.base import ResourceManager
from cellar.resource_managers.cluster_steps import (
    MakeReplicationSource,
    RemoveEndpoints,
    UpdateEndpoints,
)
from cellar.resource_managers.common import CreateStanza
from cellar.resource_managers.failover import detach_flow, failover_flow, switchover_flow
from cellar.taskmanager.configuration_flows import ApplyConfiguration
from cellar.taskmanager.kinds import JobKind
from cellar.taskmanager.store import DbInstanceStore


class _ClusterStep(task.Task):  # type: ignore[misc]
    def __init__(
        self, store: DbInstanceStore, cluster_id: str, member_ids: tuple[str, ...], *, name: str
    ) -> None:
        super().__init__(name=name)
        self.store = store
        self.cluster_id = cluster_id
        self.member_ids = member_ids


class FinishMembers(_ClusterStep):
    """The members this job built are idle (ACTIVE once their guests report RUNNING)."""

    def execute(self) -> None:
        for iid in self.member_ids:
            if not self.store.is_deleting(iid):
                self.store.finish_member(iid)


class FinishCluster(_ClusterStep):
    def execute(self) -> None:
        self.store.change_cluster_task(
            self.cluster_id, ClusterTask.NONE, fault_message=None, fault_details=None
        )


class FinishPromotion(_ClusterStep):
    """After a switchover or failover: the members it touched are idle again, except a
    fenced old primary, which stays ERROR until it is shrunk away."""

    def __init__(
        self, store: DbInstanceStore, cluster_id: str, member_ids: tuple[str, ...], *,
        fenced: str | None, name: str,
    ) -> None:  # fmt: skip
        super().__init__(store, cluster_id, member_ids, name=name)
        self.fenced = fenced

    def execute(self) -> None:
        for iid in self.member_ids:
            if self.store.is_deleting(iid):
                continue
            if iid == self.fenced:
                self.store.record_fault(
                    iid,
                    "Ejected: this primary stopped answering and was fenced (no ingress); "
                    "a replica took its place. Shrink it away.",
                    "",
                )
                self.store.change_task(iid, InstanceTask.ERROR)
            else:
                self.store.finish_member(iid)


class MarkMembersDeleted(_ClusterStep):
    def execute(self) -> None:
        for iid in self.member_ids:
            if self.store.get(iid).task != InstanceTask.DELETED.value:
                self.store.mark_deleted(iid)


class MarkClusterDeleted(_ClusterStep):
    def execute(self) -> None:
        self.store.mark_cluster_deleted(self.cluster_id)


def cluster_steps(manager: ResourceManager, store: DbInstanceStore, job: Job) -> list[Any]:
    """The steps of a cluster job. Deterministic: a resumed job gets the same atoms."""
    kind, cid, args = JobKind(job.kind), job.instance_id or "", job.args
    names = _endpoints(store, cid, manager.ctx.settings.dns_zone)
    update = UpdateEndpoints(manager.ctx, cid, names, name="endpoints.update")
    if kind in (JobKind.PROVISION_CLUSTER, JobKind.GROW_CLUSTER):
        members = tuple(spec_from_dict(d) for d in args["members"])
        ids = tuple(m.instance_id for m in members)
        source: list[Any] = []
        stanza: list[Any] = []
        if kind is JobKind.PROVISION_CLUSTER:
            flow = manager.provision_cluster(cid, members)
            # The group's stanza, made on its primary (its replicas archive once promoted).
            primary_spec = next(m for m in members if m.replica_of is None)
            stanza = [CreateStanza(manager.ctx, primary_spec, name="backup.stanza")]
        else:
            flow = manager.grow_cluster(cid, members)
            primary = members[0].replica_of or ""
            source = [MakeReplicationSource(manager.ctx, primary, cid, name="primary.source")]
        # The primary's configuration group on the new members (restarted if need be).
        overrides = [
            ApplyConfiguration(manager, store, iid, dict(args["overrides"]), restart=True,
                               name=f"configuration.apply.{iid}")
            for iid in ids
            if args.get("overrides")
        ]  # fmt: skip
        return [
            *source,
            flow,
            *overrides,
            *stanza,
            FinishMembers(store, cid, ids, name="members.ready"),
            update,
            FinishCluster(store, cid, ids, name="cluster.ready"),
        ]
    if kind is JobKind.SHRINK_CLUSTER:
        ids = tuple(args["instance_ids"])
        return [
            manager.shrink_cluster(cid, ids),
            MarkMembersDeleted(store, cid, ids, name="members.deleted"),
            update,
            FinishCluster(store, cid, ids, name="cluster.ready"),
        ]
    if kind is JobKind.DELETE_CLUSTER:
        ids = tuple(args.get("instance_ids") or ())
        return [
            RemoveEndpoints(manager.ctx, cid, names, name="endpoints.delete"),
            manager.delete_cluster(cid),
            MarkMembersDeleted(store, cid, ids, name="members.deleted"),
            MarkClusterDeleted(store, cid, ids, name="cluster.deleted"),
        ]
    if kind is JobKind.SWITCHOVER_CLUSTER:
        ids = (args["candidate"], args["old_primary"])
        return [
            switchover_flow(manager.ctx, cid, args, names),
            FinishPromotion(store, cid, ids, fenced=None, name="members.ready"),
            FinishCluster(store, cid, ids, name="cluster.ready"),
        ]
    if kind is JobKind.FAILOVER_CLUSTER:
        ids = (args["old_primary"],)
        return [
            failover_flow(manager.ctx, cid, args, names),
            FinishPromotion(store, cid, ids, fenced=args["old_primary"], name="members.ready"),
            FinishCluster(store, cid, ids, name="cluster.ready"),
        ]
    if kind is JobKind.DETACH_CLUSTER:
        ids = (args["replica"],)
        return [
            detach_flow(manager.ctx, cid, args, names),
            FinishPromotion(store, cid, ids, fenced=None, name="members.ready"),
            FinishCluster(store, cid, ids, name="cluster.ready"),
        ]
    raise ValueError(f"not a cluster job: {job.kind!r}")


def _endpoints(store: DbInstanceStore, cluster_id: str, zone: str) -> Endpoints | None:
    """The cluster's DNS names; none for a group made by `replica_of`."""
    with transaction(store.sessions, readonly=True) as s:
        row = clusters_repo.get_cluster(s, cluster_id=cluster_id, deleted=True)
        return None if row.implicit else endpoints(row.name, zone)


# Jobs whose flow, reverted, leaves the cluster as it was: then it is idle again, with
# the fault saying what was refused (a switchover's candidate too far behind).
_UNDONE_WHEN_REVERTED = frozenset({JobKind.SWITCHOVER_CLUSTER, JobKind.DETACH_CLUSTER})


def record_cluster_failure(
    store: DbInstanceStore, job: Job, message: str, details: str, *, reverted: bool = False
) -> None:
    """The cluster is ERROR with the fault, and so are the members the job was working on
    (unless a delete of the cluster took over meanwhile: the delete job owns them); a
    switchover or detach that was undone leaves them idle, the fault recorded."""
    kind, cid = JobKind(job.kind), job.instance_id or ""
    if kind is not JobKind.DELETE_CLUSTER and store.cluster_task(cid) in (
        ClusterTask.DELETING,
        ClusterTask.DELETED,
    ):
        return
    store.record_cluster_fault(cid, message, details)
    undone = reverted and kind in _UNDONE_WHEN_REVERTED
    store.change_cluster_task(cid, ClusterTask.NONE if undone else ClusterTask.ERROR)
    if kind in (JobKind.PROVISION_CLUSTER, JobKind.GROW_CLUSTER):
        ids = [d["instance_id"] for d in job.args["members"]]
    elif kind is JobKind.SWITCHOVER_CLUSTER:
        ids = [job.args["candidate"], job.args["old_primary"]]
    elif kind is JobKind.FAILOVER_CLUSTER:
        ids = [job.args["old_primary"]]
    elif kind is JobKind.DETACH_CLUSTER:
        ids = [job.args["replica"]]
    else:
        ids = list(job.args.get("instance_ids") or ())
    for iid in ids:
        try:
            if store.get(iid).task != InstanceTask.DELETED.value:
                store.record_fault(iid, message, details)
                store.change_task(iid, InstanceTask.NONE if undone else InstanceTask.ERROR)
        except CellarError:
            continue
