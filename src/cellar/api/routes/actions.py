"""`POST /instances/{id}/action`: resize (flavor or volume), restart, reboot, and on a
replication group's members `promote_to_replica_source` (a planned switchover, on a
replica) and `eject_replica_source` (failover, on a primary that no longer answers). 202.

A member of a cluster that is mid-operation takes no action (422).

Order of checks: the body (400), the instance (404), the resource manager (501), the
arguments against the instance (400), its state as read (422, Trove's
`validate_can_perform_action`), then the task change as a compare-and-set against the
task read: an action that lost a race with another one gets 409 and writes nothing.

`reset_status` (Trove's, with `force delete`) is apart: it takes an instance from any
state back to a deletable one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Body, Response
from sqlalchemy.orm import Session

from cellar.api import cluster_provisioning
from cellar.api.auth import Ctx
from cellar.api.deps import ApiState, State
from cellar.api.provisioning import resolve_flavor
from cellar.api.quota_checks import check_growth
from cellar.api.schemas import NoArguments, ResetStatus, Resize
from cellar.api.validation import parse
from cellar.config import Settings
from cellar.db import catalog
from cellar.db import clusters as clusters_repo
from cellar.db import instances as repo
from cellar.db.engine import transaction
from cellar.db.jobs import submit_job
from cellar.db.models import Cluster, Instance
from cellar.db.resets import reset_instance_status
from cellar.domain.clusters import ClusterTask
from cellar.domain.errors import BadRequest, CellarError, Forbidden, UnprocessableEntity
from cellar.domain.specs import flavor_to_dict
from cellar.domain.status import InstanceTask, ServerStatus, ServiceStatus, check_can_act
from cellar.drivers.base import DriverError
from cellar.resource_managers.base import Operation
from cellar.taskmanager.failover_watch import submit_failover
from cellar.taskmanager.kinds import JobKind

router = APIRouter(tags=["instances"])

GROUP_ACTIONS = ("promote_to_replica_source", "eject_replica_source")
ACTIONS = ("reboot", "resize", "restart", "reset_status", *GROUP_ACTIONS)


@dataclass(frozen=True)
class Plan:
    """What an action does: the task it takes and the job it runs."""

    task: InstanceTask
    kind: JobKind
    args: dict[str, Any] = field(default_factory=dict)


def _one_action(body: dict[str, Any]) -> tuple[str, Any]:
    unknown = sorted(set(body) - set(ACTIONS))
    if unknown:
        raise BadRequest(unknown[0], f"is not an action; choose one of {', '.join(ACTIONS)}")
    if len(body) != 1:
        raise BadRequest("body", f"must hold exactly one action: {', '.join(ACTIONS)}")
    ((name, args),) = body.items()
    return name, args


def _operation(name: str, args: Any) -> Operation | None:
    """The resource-manager operation an action needs; None for guest tasks (restart)."""
    if name == "reboot":
        return Operation.REBOOT
    if name == "resize":
        volume = isinstance(args, dict) and "volume" in args
        return Operation.RESIZE_VOLUME if volume else Operation.RESIZE_FLAVOR
    return None


def _plan_resize(session: Session, row: Instance, args: Any, settings: Settings) -> Plan:
    resize = parse(Resize, args, "resize")
    if resize.volume is not None:
        size = resize.volume.size
        if size <= row.volume_size:
            raise BadRequest(
                "resize.volume.size",
                f"must be larger than the current size ({row.volume_size} GB); volumes only grow",
            )
        check_growth(
            session, project_id=row.tenant_id, settings=settings, volumes=size - row.volume_size
        )
        return Plan(InstanceTask.RESIZING_VOLUME, JobKind.RESIZE_VOLUME, {"size_gb": size})
    assert resize.flavorRef is not None
    flavor = resolve_flavor(session, ref=resize.flavorRef, field="resize.flavorRef")
    if flavor.id == row.flavor_id:
        raise BadRequest("resize.flavorRef", f"the instance already has flavor {flavor.id!r}")
    current = catalog.get_flavor(session, flavor_id=row.flavor_id)
    check_growth(
        session, project_id=row.tenant_id, settings=settings, ram=flavor.ram_mb - current.ram_mb
    )
    return Plan(
        InstanceTask.RESIZING,
        JobKind.RESIZE_FLAVOR,
        {"flavor": flavor_to_dict(catalog.flavor_spec(flavor))},
    )


def _plan(session: Session, name: str, args: Any, row: Instance, settings: Settings) -> Plan:
    if name == "resize":
        return _plan_resize(session, row, args, settings)
    parse(NoArguments, args, name)  # restart is a guest task, common to every manager
    if name == "reboot":
        return Plan(InstanceTask.REBOOTING, JobKind.REBOOT)
    return Plan(InstanceTask.RESTARTING, JobKind.RESTART)


@router.post("/instances/{instance_id}/action", status_code=202)
def instance_action(
    instance_id: str, body: Annotated[dict[str, Any], Body()], ctx: Ctx, state: State
) -> Response:
    if isinstance(body, dict) and set(body) == {"reset_status"}:
        reset_status(instance_id, body["reset_status"], ctx.scope, ctx.is_admin, state)
        return Response(status_code=202)
    name, args = _one_action(body)
    start_action(instance_id, name, args, ctx.scope, state)
    return Response(status_code=202)


def reset_status(
    instance_id: str, args: Any, scope: str | None, is_admin: bool, state: ApiState
) -> None:
    """Trove's `reset_status`: the task back to NONE and the datastore to UNKNOWN (status
    ERROR), the instance's running backups failed; from any state, so that a stuck
    instance can be deleted. Administrators only, unless the body asks for a force delete
    (`{"force_delete": ...}`), which owners may do (Trove's policies)."""
    parse(ResetStatus, args, "reset_status")
    if not is_admin and "force_delete" not in args:
        raise Forbidden("reset_status is for administrators (or with force_delete).")
    with transaction(state.sessions) as session:
        repo.get_instance(session, instance_id=instance_id, project_id=scope)
        reset_instance_status(session, instance_id=instance_id)


def start_action(
    instance_id: str, name: str, args: Any, scope: str | None, state: ApiState
) -> None:
    """Check and start one action (the task changed, the job submitted)."""
    with transaction(state.sessions) as session:
        seen = repo.get_instance(session, instance_id=instance_id, project_id=scope)
        cluster = (
            clusters_repo.get_cluster(session, cluster_id=seen.cluster_id)
            if seen.cluster_id
            else None
        )
    if name in GROUP_ACTIONS:
        _group_action(name, args, seen, cluster, state)
        return
    if cluster is not None and cluster.task_status != ClusterTask.NONE.value.name:
        raise UnprocessableEntity(
            f"Instance is not ready for an action: its cluster {cluster.id} is "
            f"{cluster.task_status}."
        )
    operation = _operation(name, args)
    if operation is not None:
        state.manager.require(operation, seen.provisioning_engine)
    task = InstanceTask(seen.task_status)
    with transaction(state.sessions) as session:
        plan = _plan(session, name, args, seen, state.settings)
        check_can_act(
            task,
            ServerStatus(seen.server_status) if seen.server_status else None,
            ServiceStatus(seen.service_status),
        )
        repo.change_task(session, instance_id=instance_id, target=plan.task, expected=task)
        submit_job(session, kind=plan.kind.value, instance_id=instance_id, args=plan.args)


def _group_action(
    name: str, args: Any, seen: Instance, cluster: Cluster | None, state: ApiState
) -> None:
    parse(NoArguments, args, name)
    if cluster is None:
        raise BadRequest(name, f"instance {seen.id} is neither a replica nor has replicas")
    if name == "promote_to_replica_source":
        with transaction(state.sessions) as session:
            cluster_provisioning.switchover(session, cluster=cluster, candidate=seen)
        return
    # Eject only a primary that does not answer: a live one is switched over instead.
    if seen.replica_of_id is None and _answers(state, seen.id):
        raise BadRequest(
            name,
            f"the replica source {seen.id} still answers; eject is for a dead primary "
            "(use promote_to_replica_source on a replica for a planned switchover)",
        )
    with transaction(state.sessions) as session:
        submit_failover(session, cluster=cluster, primary=seen, reason="eject_replica_source")


def _answers(state: ApiState, instance_id: str) -> bool:
    try:
        state.guest().replication_status(instance_id)
    except (DriverError, CellarError):
        return False
    return True
