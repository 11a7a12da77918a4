"""From a job to the flow that does it: the resource manager's flow, wrapped in the
task manager's lifecycle steps (the instance's task and status), and what a failure
leaves behind."""

from __future__ import annotations

from typing import Any

from taskflow import task
from taskflow.patterns import linear_flow

from cellar.db.engine import transaction
from cellar.db.jobs import SEALED, forget_sealed
from cellar.db.models import Job
from cellar.db.sealing import unseal
from cellar.domain.specs import flavor_from_dict, rule_from_dict, spec_from_dict, with_passwords
from cellar.domain.status import InstanceTask
from cellar.resource_managers.base import ResourceManager
from cellar.resource_managers.common import CreateStanza, OperationCancelled, restart_flow
from cellar.taskmanager.backup_flows import backup_steps
from cellar.taskmanager.cluster_flows import cluster_steps
from cellar.taskmanager.configuration_flows import ApplyConfiguration, configuration_steps
from cellar.taskmanager.kinds import JobKind
from cellar.taskmanager.store import DbInstanceStore


class _Lifecycle(task.Task):  # type: ignore[misc]
    def __init__(self, store: DbInstanceStore, instance_id: str, *, name: str) -> None:
        super().__init__(name=name)
        self.store = store
        self.instance_id = instance_id


class FinishTask(_Lifecycle):
    """The last step of an operation: the instance is idle again, its fault cleared."""

    def execute(self) -> None:
        if self.store.is_deleting(self.instance_id):
            raise OperationCancelled(self.instance_id)
        self.store.change_task(
            self.instance_id, InstanceTask.NONE, fault_message=None, fault_details=None
        )


class ForgetSecrets(task.Task):  # type: ignore[misc]
    """Once the guest has its users, the job's sealed passwords are dropped: nothing
    later in the flow (or a resumed one, which starts after this step) needs them."""

    def __init__(self, store: DbInstanceStore, job_id: str, *, name: str) -> None:
        super().__init__(name=name)
        self.store = store
        self.job_id = job_id

    def execute(self) -> None:
        with transaction(self.store.sessions) as session:
            forget_sealed(session, job_id=self.job_id)


class MarkDeleted(_Lifecycle):
    def execute(self) -> None:
        self.store.mark_deleted(self.instance_id)


# Which build error a failed provision step means (Trove's BUILDING_ERROR_*).
_BUILD_ERRORS = {
    "security_group": InstanceTask.BUILDING_ERROR_SEC_GROUP,
    "volume": InstanceTask.BUILDING_ERROR_VOLUME,
    "server": InstanceTask.BUILDING_ERROR_SERVER,
    "dns": InstanceTask.BUILDING_ERROR_DNS,
    "guest": InstanceTask.BUILDING_ERROR_TIMEOUT_GA,
}


def failure_task(kind: JobKind, failed_step: str | None, reverted: bool) -> InstanceTask | None:
    """The task an instance gets when a job of `kind` failed at `failed_step`."""
    if kind is JobKind.PROVISION_INSTANCE:
        prefix = (failed_step or "").split(".", 1)[0]
        return _BUILD_ERRORS.get(prefix, InstanceTask.ERROR)
    if kind is JobKind.DELETE_INSTANCE:
        return InstanceTask.ERROR
    if kind in (
        JobKind.RESIZE_FLAVOR,
        JobKind.RESIZE_VOLUME,
        JobKind.REBOOT,
        JobKind.RESTART,
    ):
        # Reverted: the instance is as it was, the fault says what failed.
        return InstanceTask.NONE if reverted else InstanceTask.ERROR
    return None


def build_flow(manager: ResourceManager, store: DbInstanceStore, job: Job) -> Any:
    """The whole flow of `job`. Deterministic: a resumed job gets the same atoms."""
    kind, iid, args = JobKind(job.kind), job.instance_id or "", job.args
    finish = FinishTask(store, iid, name="instance.ready")
    steps: list[Any]
    if kind.is_cluster:
        steps = cluster_steps(manager, store, job)
    elif kind.is_backup:
        steps = backup_steps(manager, store, job)
    elif kind is JobKind.PROVISION_INSTANCE:
        spec = spec_from_dict(args["spec"])
        if SEALED in args:
            secrets = unseal(manager.ctx.settings.secret_key_path, args[SEALED])
            spec = with_passwords(spec, secrets["passwords"])
        steps = [
            manager.provision_instance(spec),
            ForgetSecrets(store, job.id, name="secrets.forget"),
        ]
        if args.get("overrides"):
            values = dict(args["overrides"])
            steps.append(
                ApplyConfiguration(
                    manager, store, iid, values, restart=True, name="configuration.apply"
                )
            )
        steps += [CreateStanza(manager.ctx, spec, name="backup.stanza"), finish]
    elif kind is JobKind.RESIZE_FLAVOR:
        steps = [manager.resize_flavor(iid, flavor_from_dict(args["flavor"])), finish]
    elif kind is JobKind.RESIZE_VOLUME:
        steps = [manager.resize_volume(iid, int(args["size_gb"])), finish]
    elif kind is JobKind.REBOOT:
        steps = [manager.reboot(iid), finish]
    elif kind is JobKind.RESTART:
        steps = [restart_flow(manager.ctx, iid), finish]
    elif kind in (JobKind.UPDATE_OVERRIDES, JobKind.UNASSIGN_CONFIGURATION):
        steps = configuration_steps(manager, store, iid, args)
    elif kind is JobKind.DELETE_INSTANCE:
        steps = [manager.delete_instance(iid), MarkDeleted(store, iid, name="instance.deleted")]
    elif kind is JobKind.ADD_SECURITY_GROUP_RULE:
        rule = rule_from_dict(args["rule"])
        steps = [manager.add_security_group_rule(iid, args["rule_id"], rule)]
    elif kind is JobKind.DELETE_SECURITY_GROUP_RULE:
        steps = [manager.delete_security_group_rule(iid, args["rule_id"])]
    elif kind is JobKind.UPDATE_SECURITY_GROUP_RULE_CIDR:
        steps = [manager.update_security_group_rule_cidr(iid, args["rule_id"], args["cidr"])]
    else:
        raise ValueError(f"unknown job kind {job.kind!r}")
    # One flat flow: a linear manager flow's steps are lifted into it (each nesting level
    # costs TaskFlow compile and scheduling time on every job).
    flow = linear_flow.Flow(kind.value)
    for step in steps:
        if isinstance(step, linear_flow.Flow):
            flow.add(*list(step))
        else:
            flow.add(step)
    return flow
