"""Trove's configuration views (`trove/configuration/views.py`): a group, a group with
its values and instance count, the instances of a group, and the parameter catalogue."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from cellar.api.views.common import View, isotime, omitted_if_none
from cellar.db.models import Configuration
from cellar.domain.parameters import Parameter


class ConfigurationView(View):
    id: str
    name: str
    description: str | None
    created: str | None
    updated: str | None
    datastore_version_id: str
    datastore_name: str
    datastore_version_name: str


class DetailedConfigurationView(ConfigurationView):
    values: dict[str, Any]
    instance_count: int


class ConfigurationEnvelope(View):
    configuration: DetailedConfigurationView


class ConfigurationList(View):
    configurations: list[ConfigurationView]


class ConfigurationInstance(View):
    id: str
    name: str


class ConfigurationInstances(View):
    instances: list[ConfigurationInstance]


class InstanceConfiguration(View):
    configuration: dict[str, str]


class InstanceConfigurationEnvelope(View):
    instance: InstanceConfiguration


class ParameterView(View):
    name: str
    datastore_version_id: str
    restart_required: bool
    type: str
    min: int | float | None = omitted_if_none()
    max: int | float | None = omitted_if_none()
    unit: str | None = omitted_if_none()
    allowed_values: list[str] | None = omitted_if_none()


class ParameterList(View):
    parameters: list[ParameterView] = Field(serialization_alias="configuration-parameters")


def configuration_view(row: Configuration, label: tuple[str, str]) -> ConfigurationView:
    return ConfigurationView(**_fields(row, label))


def detailed_view(
    row: Configuration, label: tuple[str, str], instance_count: int
) -> DetailedConfigurationView:
    return DetailedConfigurationView(
        **_fields(row, label), values=dict(row.values), instance_count=instance_count
    )


def _fields(row: Configuration, label: tuple[str, str]) -> dict[str, Any]:
    return dict(
        id=row.id,
        name=row.name,
        description=row.description,
        created=isotime(row.created),
        updated=isotime(row.updated),
        datastore_version_id=row.datastore_version_id,
        datastore_name=label[0],
        datastore_version_name=label[1],
    )


def _number(value: float | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() and abs(value) < 2**63 else value


def parameter_view(p: Parameter, version_id: str) -> ParameterView:
    return ParameterView(
        name=p.name,
        datastore_version_id=version_id,
        restart_required=p.restart_required,
        type=p.type,
        min=_number(p.min),
        max=_number(p.max),
        unit=p.unit,
        allowed_values=list(p.enumvals) if p.vartype == "enum" else None,
    )
