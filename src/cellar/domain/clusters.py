"""Clusters: a primary and its replicas, each member an instance of its own flavor and
volume (heterogeneous, unlike Trove's clusters, which must be homogeneous).

A cluster's task says what the control plane is doing to it (Trove's ClusterTasks, plus
ERROR: the last operation failed and left its fault on the cluster). Its members' own
tasks and statuses are shown beside it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cellar.domain.errors import InvalidTransition


@dataclass(frozen=True)
class ClusterTaskInfo:
    id: int
    name: str
    description: str


class ClusterTask(enum.Enum):
    """Trove's `cluster/tasks.py` ids and names, plus ERROR."""

    NONE = ClusterTaskInfo(0x01, "NONE", "No tasks for the cluster.")
    BUILDING = ClusterTaskInfo(0x02, "BUILDING", "Building the initial cluster.")
    DELETING = ClusterTaskInfo(0x03, "DELETING", "Deleting the cluster.")
    GROWING_CLUSTER = ClusterTaskInfo(
        0x05, "GROWING_CLUSTER", "Increasing the size of the cluster."
    )
    SHRINKING_CLUSTER = ClusterTaskInfo(
        0x06, "SHRINKING_CLUSTER", "Decreasing the size of the cluster."
    )
    PROMOTING = ClusterTaskInfo(0x09, "PROMOTING", "Promoting a replica to be the primary.")
    ERROR = ClusterTaskInfo(0x40, "ERROR", "The last operation on the cluster failed.")
    DELETED = ClusterTaskInfo(0x41, "DELETED", "The cluster is deleted.")

    @classmethod
    def named(cls, name: str) -> ClusterTask:
        for task in cls:
            if task.value.name == name:
                return task
        raise ValueError(f"no cluster task {name!r}")


_BUSY = frozenset(
    {
        ClusterTask.BUILDING,
        ClusterTask.GROWING_CLUSTER,
        ClusterTask.SHRINKING_CLUSTER,
        ClusterTask.PROMOTING,
    }
)

# A busy cluster ends idle or in ERROR; delete is allowed from every live task.
CLUSTER_TRANSITIONS: dict[ClusterTask, frozenset[ClusterTask]] = {
    ClusterTask.NONE: frozenset(_BUSY - {ClusterTask.BUILDING} | {ClusterTask.DELETING}),
    # A failed member can be shrunk away, a dead primary ejected; anything can be deleted.
    ClusterTask.ERROR: frozenset(
        {ClusterTask.SHRINKING_CLUSTER, ClusterTask.PROMOTING, ClusterTask.DELETING}
    ),
    **{b: frozenset({ClusterTask.NONE, ClusterTask.ERROR, ClusterTask.DELETING}) for b in _BUSY},
    ClusterTask.DELETING: frozenset({ClusterTask.DELETED, ClusterTask.ERROR}),
    ClusterTask.DELETED: frozenset(),
}


def check_cluster_transition(current: ClusterTask, target: ClusterTask) -> None:
    if current is target and target is not ClusterTask.DELETED:
        return
    if target not in CLUSTER_TRANSITIONS[current]:
        raise InvalidTransition("The cluster's task", current.value.name, target.value.name)


@dataclass(frozen=True)
class Endpoints:
    """A cluster's DNS names: `<name>-rw.<zone>` answers with the primary's address,
    `<name>-ro.<zone>` with every replica's (one A record each, a record set)."""

    rw: str
    ro: str


def endpoints(cluster_name: str, zone: str) -> Endpoints:
    return Endpoints(rw=f"{cluster_name}-rw.{zone}", ro=f"{cluster_name}-ro.{zone}")


# A cluster's name is the first label of its endpoints: a DNS label, short enough for
# the `-rw`/`-ro` suffix (63 characters at most in all).
CLUSTER_NAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,58}[A-Za-z0-9])?$"
