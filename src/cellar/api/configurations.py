"""Configuration groups as the API applies them: the catalogue of a datastore version,
a group's values checked against it, and attaching, detaching and refreshing, each a
guest job per instance (on a cluster, per member)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from cellar.db import catalog
from cellar.db import clusters as clusters_repo
from cellar.db import configurations as repo
from cellar.db.jobs import submit_job
from cellar.db.models import Configuration, DatastoreVersion, Instance
from cellar.domain.errors import BadRequest, UnprocessableEntity
from cellar.domain.parameters import STANDBY_LIMITS, Parameter, check_values, load_catalogue
from cellar.domain.status import IDLE_TASKS, InstanceTask
from cellar.taskmanager.kinds import JobKind


def catalogue(version: DatastoreVersion) -> dict[str, Parameter]:
    """The parameters of `version`; 422 where configuration groups are not supported."""
    found = load_catalogue(version.manager, version.name)
    if found is None:
        raise UnprocessableEntity(
            "Configuration groups are not supported for this datastore: "
            f"{version.manager} {version.name}."
        )
    return found


def checked_values(
    session: Session, *, version_id: str, values: dict[str, Any], field: str
) -> dict[str, str]:
    """`values` as postgresql.conf takes them, or 400/422 naming the parameter."""
    version = catalog.get_version_by_id(session, version_id=version_id)
    return check_values(catalogue(version), values, field)


def stored(values: dict[str, Any]) -> dict[str, Any]:
    """The values as kept and shown: names lower-cased (Trove does)."""
    return {name.lower(): value for name, value in values.items()}


def members(session: Session, row: Instance) -> list[Instance]:
    """The instances a change to `row`'s configuration goes to: a cluster's every member."""
    if row.cluster_id is None:
        return [row]
    return list(clusters_repo.members(session, cluster_id=row.cluster_id))


def check_for_group(session: Session, values: dict[str, Any], targets: list[Instance]) -> None:
    """A replication group's members take no value of what a standby must match (a
    primary whose replicas were all detached has no standby: it takes any)."""
    groups = {t.cluster_id for t in targets if t.cluster_id is not None}
    if not any(len(clusters_repo.members(session, cluster_id=g)) > 1 for g in groups):
        return
    limited = sorted(STANDBY_LIMITS & {name.lower() for name in values})
    if limited:
        raise UnprocessableEntity(
            f"The configuration parameters {', '.join(limited)} cannot be set on the "
            "members of a replication group: a replica must allow at least what its "
            "primary does, and cellar keeps them the same on every member."
        )


def _check_idle(row: Instance) -> None:
    task = InstanceTask(row.task_status)
    if task not in IDLE_TASKS:
        raise UnprocessableEntity(
            f"Instance {row.id} is not ready for a configuration change: its task is {task.value}."
        )


def attach(session: Session, *, row: Instance, group: Configuration) -> None:
    """Attach `group` to `row` (every member of its cluster): one update_overrides job each."""
    if row.configuration_id is not None:
        raise UnprocessableEntity(
            f"Instance {row.id} already has configuration group {row.configuration_id} "
            "attached; detach it first."
        )
    if group.datastore_version_id != row.datastore_version_id:
        raise BadRequest(
            "instance.configuration",
            f"configuration group {group.id} is for datastore version "
            f"{group.datastore_version_id}, the instance runs {row.datastore_version_id}",
        )
    targets = members(session, row)
    for member in targets:
        _check_idle(member)
    check_for_group(session, group.values, targets)
    values = checked_values(
        session, version_id=group.datastore_version_id, values=group.values, field="values"
    )
    for member in targets:
        member.configuration_id = group.id
        submit_job(
            session, kind=JobKind.UPDATE_OVERRIDES.value, instance_id=member.id,
            args={"values": values},
        )  # fmt: skip


def detach(session: Session, *, row: Instance) -> None:
    """Detach `row`'s group (from every member of its cluster); nothing if none."""
    if row.configuration_id is None:
        return
    targets = [m for m in members(session, row) if m.configuration_id is not None]
    for member in targets:
        _check_idle(member)
    for member in targets:
        member.configuration_id = None
        submit_job(session, kind=JobKind.UNASSIGN_CONFIGURATION.value, instance_id=member.id)


def refresh(session: Session, *, group: Configuration) -> None:
    """The group's new values to every instance it is attached to (Trove's
    `_refresh_on_all_instances`), but those being deleted."""
    values = checked_values(
        session, version_id=group.datastore_version_id, values=group.values, field="values"
    )
    attached = repo.attached_instances(session, configuration_id=group.id)
    check_for_group(session, group.values, attached)
    for member in attached:
        if member.task_status == InstanceTask.DELETING.value:
            continue
        submit_job(
            session, kind=JobKind.UPDATE_OVERRIDES.value, instance_id=member.id,
            args={"values": values},
        )  # fmt: skip


def find_group(session: Session, *, ref: str, project_id: str) -> Configuration:
    """The group a request names (its id, or an href ending in it); 404 if none."""
    group_id = ref.rstrip("/").rsplit("/", 1)[-1]
    return repo.get_configuration(session, configuration_id=group_id, project_id=project_id)


def change_configuration(
    session: Session, row: Instance, ref: str | None, *, project_id: str
) -> None:
    """Attach the group `ref` names to `row`, or detach its group (`ref` None)."""
    if ref is None:
        detach(session, row=row)
        return
    attach(session, row=row, group=find_group(session, ref=ref, project_id=project_id))


def group_name(session: Session, row: Instance) -> str | None:
    """The name of `row`'s configuration group, if it has one."""
    if row.configuration_id is None:
        return None
    group = session.get(Configuration, row.configuration_id)
    return None if group is None else group.name
