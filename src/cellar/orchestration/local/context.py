"""What an operation resolves templates against: its plan and the stack's live records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cellar.orchestration.local import functions
from cellar.orchestration.local.resources import Registry, Resource
from cellar.orchestration.local.states import CREATE, ROLLBACK, UPDATE
from cellar.orchestration.local.store import ResourceRecord, StackRecord
from cellar.orchestration.local.template import Template, TemplateError, parse_template

# get_attr gives None unless the resource's action is one of these (heat/engine/resource.py)
ATTRIBUTE_ACTIONS = frozenset(
    {CREATE, UPDATE, ROLLBACK, "ADOPT", "SUSPEND", "RESUME", "SNAPSHOT", "CHECK"}
)


@dataclass
class Plan:
    """A validated template with its resolved parameters and dependency graph."""

    template: Template
    params: dict[str, Any]
    graph: dict[str, frozenset[str]]


def make_plan(
    registry: Registry,
    raw: Mapping[str, Any],
    parameters: Mapping[str, Any],
    *,
    drop_unknown: bool,
) -> Plan:
    """Every check that can be made before anything is created: the template, its
    parameters, the resource types and property names, the functions and attributes used,
    and a dependency graph without cycles."""
    template = parse_template(raw)
    params = template.resolve_parameters(parameters, drop_unknown=drop_unknown)
    classes: dict[str, type[Resource]] = {}
    for name, definition in template.resources.items():
        where = f"resources.{name}"
        cls = registry.get(definition.type, f"{where}.type")
        cls.check_names(definition.properties, f"{where}.properties")
        classes[name] = cls

    def check_attribute(resource: str, attribute: str) -> str | None:
        return classes[resource].check_attribute(attribute)

    for name, definition in template.resources.items():
        where = f"resources.{name}"
        functions.validate(definition.properties, f"{where}.properties", template, check_attribute)
        functions.validate(definition.metadata, f"{where}.metadata", template, check_attribute)
    for name, output in template.outputs.items():
        functions.validate(output.value, f"outputs.{name}.value", template, check_attribute)
    graph = functions.dependencies(template)
    functions.check_acyclic(graph)
    return Plan(template, params, graph)


class Context:
    """Resolution against the live records of one stack."""

    def __init__(
        self,
        stack: StackRecord,
        params: Mapping[str, Any],
        records: Mapping[str, ResourceRecord],
        registry: Registry,
    ) -> None:
        self.stack, self.params, self.records, self.registry = stack, params, records, registry

    def param(self, name: str) -> Any:
        if name == "OS::stack_name":
            return self.stack.name
        if name == "OS::stack_id":
            return self.stack.id
        if name == "OS::project_id":
            return ""
        if name not in self.params:
            raise TemplateError(f"parameters.{name}", "no value")
        return self.params[name]

    def resource_ref(self, name: str) -> Any:
        record = self.records.get(name)
        return record.physical_id if record is not None and record.physical_id else name

    def resource_attr(self, name: str, attribute: str | None) -> Any:
        record = self.records.get(name)
        if record is None or record.action not in ATTRIBUTE_ACTIONS:
            return None
        plugin = plugin_for(self.registry, record)
        return plugin.attributes() if attribute is None else plugin.get_attribute(attribute)


def plugin_for(registry: Registry, record: ResourceRecord) -> Resource:
    """The plugin of a stored record, with the properties it last applied."""
    cls = registry.get(record.type, f"resources.{record.name}.type")
    return make_plugin(cls, record, record.properties)


def make_plugin(
    cls: type[Resource], record: ResourceRecord, properties: Mapping[str, Any]
) -> Resource:
    plugin = cls(record.name, properties, record.physical_id, dict(record.data))
    plugin.stack_id = record.stack_id
    plugin.replaced = not record.current
    return plugin


def failure_reason(name: str, exc: BaseException) -> str:
    """Heat's status reason: the exception's type, the resource's path and the message."""
    if isinstance(exc, TemplateError):
        return f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: resources.{name}: {exc}"
