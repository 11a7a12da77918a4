"""Configuration groups (Trove's `/configurations`, `trove/configuration/service.py`):
create (200), list, show (with values and instance count), the instances of a group,
PUT (replace values, name, description: 202) and PATCH (merge values: 200), both
applied again to every attached instance; delete (202; 400 while attached). Attach and
detach through `PUT /instances/{id}` (Trove's `update`: `{"instance": {"configuration":
id}}` attaches, a null one or an empty `instance` detaches; in routes/instances.py);
`GET /instances/{id}/configuration` the values in force. The parameter catalogue under
`/datastores/.../parameters`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response
from pydantic import Field, StringConstraints

from cellar.api import configurations as groups
from cellar.api.auth import Ctx
from cellar.api.deps import State
from cellar.api.provisioning import resolve_version
from cellar.api.schemas import DatastoreRef, Name, StrictModel
from cellar.api.validation import parse
from cellar.api.views.configurations import (
    ConfigurationEnvelope,
    ConfigurationInstance,
    ConfigurationInstances,
    ConfigurationList,
    InstanceConfiguration,
    InstanceConfigurationEnvelope,
    ParameterList,
    ParameterView,
    configuration_view,
    detailed_view,
    parameter_view,
)
from cellar.db import catalog
from cellar.db import configurations as repo
from cellar.db import instances as instances_repo
from cellar.db.engine import transaction
from cellar.db.models import Configuration, DatastoreVersion
from cellar.domain.errors import BadRequest, NotFound, TransientError, UnprocessableEntity
from cellar.drivers.base import DriverError

router = APIRouter(tags=["configurations"])

Description = Annotated[str, StringConstraints(max_length=2000)]


class ConfigurationCreate(StrictModel):
    name: Name
    description: Description | None = None
    datastore: DatastoreRef | None = None
    values: dict[str, Any]


class ConfigurationCreateRequest(StrictModel):
    configuration: ConfigurationCreate


class ConfigurationUpdate(StrictModel):
    name: Name | None = None
    description: Description | None = None
    values: dict[str, Any]


class ConfigurationUpdateRequest(StrictModel):
    configuration: ConfigurationUpdate


class ConfigurationEdit(StrictModel):
    values: dict[str, Any] = Field(default_factory=dict)


class ConfigurationEditRequest(StrictModel):
    configuration: ConfigurationEdit


def _envelope(state: State, row: Configuration) -> ConfigurationEnvelope:
    with transaction(state.sessions) as session:
        label = catalog.version_labels(session, version_ids=[row.datastore_version_id])
        count = repo.instance_count(session, configuration_id=row.id)
    return ConfigurationEnvelope(
        configuration=detailed_view(row, label[row.datastore_version_id], count)
    )


@router.get("/configurations")
def list_configurations(ctx: Ctx, state: State) -> ConfigurationList:
    with transaction(state.sessions) as session:
        rows = repo.list_configurations(session, project_id=ctx.tenant_id)
        labels = catalog.version_labels(session, version_ids={r.datastore_version_id for r in rows})
    return ConfigurationList(
        configurations=[configuration_view(r, labels[r.datastore_version_id]) for r in rows]
    )


@router.post("/configurations")
def create_configuration(
    ctx: Ctx, state: State, body: Annotated[Any, Body()] = None
) -> ConfigurationEnvelope:
    request = parse(ConfigurationCreateRequest, body, "").configuration
    with transaction(state.sessions) as session:
        _ds, version = resolve_version(session, ref=request.datastore, prefix="configuration")
        groups.checked_values(
            session, version_id=version.id, values=request.values, field="configuration.values"
        )
        row = repo.create_configuration(
            session,
            tenant_id=ctx.tenant_id,
            name=request.name,
            description=request.description,
            datastore_version_id=version.id,
            values=groups.stored(request.values),
        )
    return _envelope(state, row)


@router.get("/configurations/{configuration_id}")
def show_configuration(configuration_id: str, ctx: Ctx, state: State) -> ConfigurationEnvelope:
    with transaction(state.sessions) as session:
        row = repo.get_configuration(
            session, configuration_id=configuration_id, project_id=ctx.tenant_id
        )
    return _envelope(state, row)


@router.get("/configurations/{configuration_id}/instances")
def configuration_instances(
    configuration_id: str, ctx: Ctx, state: State
) -> ConfigurationInstances:
    with transaction(state.sessions) as session:
        row = repo.get_configuration(
            session, configuration_id=configuration_id, project_id=ctx.tenant_id
        )
        rows = repo.attached_instances(session, configuration_id=row.id)
    return ConfigurationInstances(
        instances=[ConfigurationInstance(id=r.id, name=r.name) for r in rows]
    )


@router.put("/configurations/{configuration_id}", status_code=202)
def update_configuration(
    configuration_id: str, ctx: Ctx, state: State, body: Annotated[Any, Body()] = None
) -> Response:
    """Replace the values (and name, description when given); re-applied everywhere."""
    request = parse(ConfigurationUpdateRequest, body, "").configuration
    with transaction(state.sessions) as session:
        row = repo.get_configuration(
            session, configuration_id=configuration_id, project_id=ctx.tenant_id
        )
        groups.checked_values(
            session, version_id=row.datastore_version_id, values=request.values,
            field="configuration.values",
        )  # fmt: skip
        changes: dict[str, Any] = {"values": groups.stored(request.values)}
        if request.name is not None:
            changes["name"] = request.name
        if "description" in request.model_fields_set:
            changes["description"] = request.description
        repo.update_configuration(session, row=row, **changes)
        groups.refresh(session, group=row)
    return Response(status_code=202)


@router.patch("/configurations/{configuration_id}")
def edit_configuration(
    configuration_id: str, ctx: Ctx, state: State, body: Annotated[Any, Body()] = None
) -> Response:
    """Merge the values into the group's; re-applied everywhere (200, no body)."""
    request = parse(ConfigurationEditRequest, body, "").configuration
    with transaction(state.sessions) as session:
        row = repo.get_configuration(
            session, configuration_id=configuration_id, project_id=ctx.tenant_id
        )
        groups.checked_values(
            session, version_id=row.datastore_version_id, values=request.values,
            field="configuration.values",
        )  # fmt: skip
        merged = {**row.values, **groups.stored(request.values)}
        repo.update_configuration(session, row=row, values=merged)
        groups.refresh(session, group=row)
    return Response(status_code=200)


@router.delete("/configurations/{configuration_id}", status_code=202)
def delete_configuration(configuration_id: str, ctx: Ctx, state: State) -> Response:
    with transaction(state.sessions) as session:
        row = repo.get_configuration(
            session, configuration_id=configuration_id, project_id=ctx.tenant_id
        )
        attached = repo.attached_instances(session, configuration_id=row.id)
        if attached:
            raise BadRequest(
                "configuration",
                f"configuration group {row.id} is attached to {len(attached)} instances "
                f"({', '.join(r.id for r in attached)}); detach it first",
            )
        repo.delete_configuration(session, row=row)
    return Response(status_code=202)


# The values in force (attach and detach: `PUT /instances/{id}`, routes/instances.py).


@router.get("/instances/{instance_id}/configuration")
def instance_configuration(
    instance_id: str, ctx: Ctx, state: State
) -> InstanceConfigurationEnvelope:
    """The settings in force on the datastore that a group may set and that are not
    PostgreSQL's own defaults (cellar's flavor-sized ones, the group's)."""
    with transaction(state.sessions) as session:
        row = instances_repo.get_instance(session, instance_id=instance_id, project_id=ctx.scope)
        version = catalog.get_version_by_id(session, version_id=row.datastore_version_id)
    settable = groups.catalogue(version)
    try:
        in_force = state.guest().configuration(row.id)
    except TransientError:
        raise
    except DriverError as exc:  # never prepared, its server down: not ready (Trove's 422)
        raise UnprocessableEntity(f"The datastore cannot be read now: {exc}") from None
    values = {k: v for k, v in sorted(in_force.items()) if k in settable}
    return InstanceConfigurationEnvelope(instance=InstanceConfiguration(configuration=values))


# The parameter catalogue.


def _parameters(version: DatastoreVersion) -> ParameterList:
    return ParameterList(
        parameters=[parameter_view(p, version.id) for p in groups.catalogue(version).values()]
    )


def _parameter(version: DatastoreVersion, name: str) -> ParameterView:
    parameter = groups.catalogue(version).get(name.lower())
    if parameter is None:
        raise NotFound("Configuration parameter", name)
    return parameter_view(parameter, version.id)


def _version(state: State, datastore: str, version: str) -> DatastoreVersion:
    with transaction(state.sessions) as session:
        ds = catalog.get_datastore(session, id_or_name=datastore)
        return catalog.get_version(session, datastore_id=ds.id, id_or_name=version)


def _version_by_id(state: State, version_id: str) -> DatastoreVersion:
    with transaction(state.sessions) as session:
        return catalog.get_version_by_id(session, version_id=version_id)


@router.get("/datastores/versions/{version_id}/parameters", response_model_by_alias=True)
def list_parameters_by_version(version_id: str, _ctx: Ctx, state: State) -> ParameterList:
    return _parameters(_version_by_id(state, version_id))


@router.get("/datastores/versions/{version_id}/parameters/{name}")
def show_parameter_by_version(version_id: str, name: str, _ctx: Ctx, state: State) -> ParameterView:
    return _parameter(_version_by_id(state, version_id), name)


@router.get("/datastores/{datastore}/versions/{version}/parameters", response_model_by_alias=True)
def list_parameters(datastore: str, version: str, _ctx: Ctx, state: State) -> ParameterList:
    return _parameters(_version(state, datastore, version))


@router.get("/datastores/{datastore}/versions/{version}/parameters/{name}")
def show_parameter(
    datastore: str, version: str, name: str, _ctx: Ctx, state: State
) -> ParameterView:
    return _parameter(_version(state, datastore, version), name)
