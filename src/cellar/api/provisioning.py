"""A create request made into an instance: the catalog resolved, the spec built, and the
row, its security group and rules, and the provision job written in one transaction."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from cellar.api import configurations
from cellar.api.quota_checks import check_instances
from cellar.api.restores import Restore
from cellar.api.schemas import DatastoreRef, InstanceCreate
from cellar.config import Settings
from cellar.db import catalog
from cellar.db.instances import create_instance
from cellar.db.jobs import SEALED, submit_job
from cellar.db.models import Configuration, Datastore, DatastoreVersion, Flavor, Instance
from cellar.db.sealing import seal
from cellar.db.security_groups import create_security_group
from cellar.domain.errors import BadRequest, NotFound
from cellar.domain.specs import (
    DatabaseSpec,
    InstanceSpec,
    UserSpec,
    spec_passwords,
    spec_to_dict,
    without_passwords,
)
from cellar.taskmanager.kinds import JobKind

DEFAULT_DATASTORE = "postgresql"
DEFAULT_CIDRS = ("0.0.0.0/0",)


def resolve_flavor(session: Session, *, ref: str, field: str) -> Flavor:
    """The flavor a request names; an unknown one is bad input naming `field`."""
    try:
        return catalog.get_flavor(session, flavor_id=ref)
    except NotFound:
        raise BadRequest(field, f"flavor {ref!r} does not exist") from None


def resolve_version(
    session: Session, *, ref: DatastoreRef | None, prefix: str = "instance"
) -> tuple[Datastore, DatastoreVersion]:
    """The datastore and version asked for, by id or name; the defaults when not given.
    Errors name `<prefix>.datastore.*`."""
    ds_ref = ref.type if ref is not None and ref.type else DEFAULT_DATASTORE
    version_ref = ref.version if ref is not None else None
    try:
        datastore = catalog.get_datastore(session, id_or_name=ds_ref)
    except NotFound:
        raise BadRequest(
            f"{prefix}.datastore.type", f"datastore {ds_ref!r} does not exist"
        ) from None
    field = f"{prefix}.datastore.version"
    if version_ref is None:
        if datastore.default_version_id is None:
            raise BadRequest(
                field, f"datastore {datastore.name!r} has no default version; name one"
            )
        version_ref = datastore.default_version_id
    try:
        version = catalog.get_version(session, datastore_id=datastore.id, id_or_name=version_ref)
    except NotFound:
        raise BadRequest(
            field, f"datastore {datastore.name!r} has no version {version_ref!r}"
        ) from None
    if not version.active:
        raise BadRequest(field, f"version {version.name!r} of {datastore.name!r} is not active")
    number = ref.version_number if ref is not None else None
    if number is not None and number != version.name:
        raise BadRequest(
            f"{field}_number", f"version {version.name!r} of {datastore.name!r} is not {number!r}"
        )
    return datastore, version


def _check_grants(request: InstanceCreate) -> None:
    """A user may only be granted databases that this request creates."""
    created = {d.name for d in request.databases}
    for i, user in enumerate(request.users):
        for j, grant in enumerate(user.databases):
            if grant.name not in created:
                raise BadRequest(
                    f"instance.users[{i}].databases[{j}].name",
                    f"database {grant.name!r} is not among instance.databases",
                )


def provision(
    session: Session,
    *,
    request: InstanceCreate,
    project_id: str,
    settings: Settings,
    provisioning_engine: str,
    restore: Restore | None = None,
) -> tuple[Instance, tuple[str, str]]:
    """Write the instance (task BUILDING), its security group and rules, and the job."""
    _check_grants(request)
    if request.replica_count is not None:
        raise BadRequest("instance.replica_count", "goes with replica_of")
    if request.flavorRef is None:
        raise BadRequest("instance.flavorRef", "is required (unless replica_of is given)")
    if request.volume is None:
        raise BadRequest("instance.volume", "is required (unless replica_of is given)")
    flavor = resolve_flavor(session, ref=request.flavorRef, field="instance.flavorRef")
    datastore, version = resolve_version(session, ref=request.datastore)
    check_instances(
        session,
        project_id=project_id,
        settings=settings,
        flavors=[flavor],
        volume_gb=request.volume.size,
    )
    group, overrides = _configuration(session, request, version, project_id)
    extra: dict[str, Any] = {}
    if restore is not None:
        if version.id != restore.version_id:
            raise BadRequest("instance.datastore", "a restore runs its source's datastore version")
        for name in ("users", "databases"):
            if getattr(request, name):
                raise BadRequest(f"instance.{name}", "a restored instance has its source's")
        if restore.min_volume_gb is not None and request.volume.size < restore.min_volume_gb:
            raise BadRequest(
                "instance.volume.size",
                f"must be at least {restore.min_volume_gb} GB: the backup holds that much",
            )
        instant = restore.target_time
        extra = {
            "restore_stanza": restore.stanza,
            "restore_label": restore.label,
            "restore_time": None if instant is None else instant.isoformat(),
        }
    access = request.access
    cidrs = tuple(access.allowed_cidrs or ()) if access is not None else ()
    spec = new_spec(
        name=request.name,
        project_id=project_id,
        flavor=flavor,
        volume_size_gb=request.volume.size,
        datastore=datastore,
        version=version,
        allowed_cidrs=cidrs or DEFAULT_CIDRS,
        dns_zone=settings.dns_zone,
        databases=tuple(
            DatabaseSpec(d.name, d.character_set, d.collate) for d in request.databases
        ),
        users=tuple(
            UserSpec(u.name, u.password, tuple(d.name for d in u.databases)) for u in request.users
        ),
        **extra,
    )
    row = write_instance(
        session,
        spec=spec,
        flavor_id=flavor.id,
        version_id=version.id,
        is_public=access.is_public if access is not None else False,
        provisioning_engine=provisioning_engine,
    )
    # The users' passwords stay in the job only sealed, until the guest has them (the
    # flow's `secrets.forget` step drops them): a crash before then resumes with them.
    args: dict[str, Any] = {"spec": spec_to_dict(without_passwords(spec))}
    if spec.users:
        args[SEALED] = seal(settings.secret_key_path, {"passwords": spec_passwords(spec)})
    if group is not None:
        row.configuration_id = group.id
        args["overrides"] = overrides
    submit_job(
        session, kind=JobKind.PROVISION_INSTANCE.value, instance_id=spec.instance_id, args=args
    )
    return row, (datastore.name, version.name)


def _configuration(
    session: Session, request: InstanceCreate, version: DatastoreVersion, project_id: str
) -> tuple[Configuration | None, dict[str, str]]:
    """The configuration group a create names, and its values as the guest takes them."""
    if request.configuration is None:
        return None, {}
    group = configurations.find_group(session, ref=request.configuration, project_id=project_id)
    if group.datastore_version_id != version.id:
        raise BadRequest(
            "instance.configuration",
            f"configuration group {group.id} is for another datastore version than {version.name}",
        )
    values = configurations.checked_values(
        session, version_id=version.id, values=group.values, field="values"
    )
    return group, values


def new_spec(
    *,
    name: str,
    project_id: str,
    flavor: Flavor,
    volume_size_gb: int,
    datastore: Datastore,
    version: DatastoreVersion,
    allowed_cidrs: tuple[str, ...],
    dns_zone: str,
    **extra: Any,
) -> InstanceSpec:
    """The spec of a new instance (a new id), from the catalog rows a request resolved."""
    return InstanceSpec(
        instance_id=str(uuid.uuid4()),
        name=name,
        project_id=project_id,
        flavor=catalog.flavor_spec(flavor),
        volume_size_gb=volume_size_gb,
        datastore=datastore.name,
        datastore_version=version.name,
        image=version.image,
        ports=catalog.version_ports(version),
        allowed_cidrs=allowed_cidrs,
        dns_zone=dns_zone,
        **extra,
    )


def write_instance(
    session: Session,
    *,
    spec: InstanceSpec,
    flavor_id: str,
    version_id: str,
    is_public: bool,
    provisioning_engine: str,
    cluster_id: str | None = None,
) -> Instance:
    """The instance row (task BUILDING), its security group and its rules."""
    row = create_instance(
        session,
        id=spec.instance_id,
        tenant_id=spec.project_id,
        name=spec.name,
        hostname=spec.hostname,
        flavor_id=flavor_id,
        volume_size=spec.volume_size_gb,
        datastore_version_id=version_id,
        addresses=[],
        access={"is_public": is_public, "allowed_cidrs": list(spec.allowed_cidrs)},
        provisioning_engine=provisioning_engine,
        cluster_id=cluster_id,
        replica_of_id=spec.replica_of,
    )
    create_security_group(
        session,
        instance_id=spec.instance_id,
        project_id=spec.project_id,
        name=spec.resource_name,
        description=f"Security group of instance {spec.instance_id}",
        rules=spec.ingress_rules(),
    )
    return row
