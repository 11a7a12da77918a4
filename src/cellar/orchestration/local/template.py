"""HOT templates as Python data: parsing, validation and parameter resolution.

Only what cellar's templates use, with Heat's rules (`heat/engine/hot/template.py`,
`heat/engine/hot/parameters.py`). Every validation error is a `TemplateError` whose field
names the section and key path, e.g. ``parameters.flavor``.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cellar.domain.errors import BadRequest

# Versions from 2018-08-31 on, with their release names (Heat's setup.cfg).
VERSIONS: Mapping[str, str] = {
    "2018-08-31": "2018-08-31",
    "rocky": "2018-08-31",
    "2021-04-16": "2021-04-16",
    "wallaby": "2021-04-16",
}

SECTIONS = frozenset(
    {
        "heat_template_version",
        "description",
        "parameter_groups",
        "parameters",
        "resources",
        "outputs",
    }
)
RESOURCE_KEYS = frozenset(
    {
        "type",
        "properties",
        "metadata",
        "depends_on",
        "deletion_policy",
        "update_policy",
        "description",
    }
)
OUTPUT_KEYS = frozenset({"value", "description"})
PARAMETER_KEYS = frozenset(
    {"type", "label", "description", "default", "hidden", "constraints", "immutable", "tags"}
)
PARAMETER_TYPES = frozenset({"string", "number", "boolean", "json", "comma_delimited_list"})
CONSTRAINT_KINDS = frozenset({"allowed_values", "range", "length", "allowed_pattern"})
PSEUDO_PARAMETERS = frozenset({"OS::stack_name", "OS::stack_id", "OS::project_id"})

_TRUE = frozenset({"1", "t", "true", "on", "y", "yes"})
_FALSE = frozenset({"0", "f", "false", "off", "n", "no"})


class TemplateError(BadRequest):
    """A template, or the parameters given for it, is invalid; `field` is the key path."""


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    default: Any = None
    has_default: bool = False
    constraints: tuple[Mapping[str, Any], ...] = ()
    description: str = ""
    immutable: bool = False
    hidden: bool = False  # its value is shown as HIDDEN (a password, a secret)

    def convert(self, value: Any) -> Any:
        """The value converted to the parameter's type and checked against its constraints."""
        where = f"parameters.{self.name}"
        converted = _convert(self.type, value, where)
        for constraint in self.constraints:
            _check_constraint(self.type, constraint, converted, where)
        return converted


@dataclass(frozen=True)
class ResourceDefinition:
    name: str
    type: str
    properties: Mapping[str, Any] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Output:
    name: str
    value: Any
    description: str = ""


@dataclass(frozen=True)
class Template:
    version: str
    description: str
    parameters: Mapping[str, Parameter]
    resources: Mapping[str, ResourceDefinition]
    outputs: Mapping[str, Output]
    raw: Mapping[str, Any]

    def resolve_parameters(
        self, values: Mapping[str, Any], *, drop_unknown: bool = False
    ) -> dict[str, Any]:
        """Typed values of every parameter: those given, else the defaults.

        A given name the template does not declare is refused, unless `drop_unknown`
        (a PATCH update drops the parameters the new template no longer has).
        """
        for name in values:
            if name not in self.parameters and not drop_unknown:
                raise TemplateError(f"parameters.{name}", "not defined in the template")
        resolved: dict[str, Any] = {}
        for name, param in self.parameters.items():
            if name in values:
                resolved[name] = param.convert(values[name])
            elif param.has_default:
                resolved[name] = param.convert(param.default)
            else:
                raise TemplateError(f"parameters.{name}", "a value is required")
        return resolved

    def shown_parameters(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """`values` as Heat shows a stack's parameters: a hidden one's value masked."""
        return {
            name: HIDDEN if name in self.parameters and self.parameters[name].hidden else value
            for name, value in values.items()
        }


# What Heat shows for the value of a parameter with `hidden: true`.
HIDDEN = "******"


def _fail(where: str, message: str) -> TemplateError:
    return TemplateError(where, message)


def parse_version(value: Any) -> str:
    if isinstance(value, datetime.date):
        value = value.isoformat()
    if not isinstance(value, str) or value not in VERSIONS:
        known = ", ".join(VERSIONS)
        raise _fail("heat_template_version", f"unsupported version {value!r} (known: {known})")
    return VERSIONS[value]


def parse_template(data: Any) -> Template:
    """The template `data` (HOT as a dict) checked and parsed; raises `TemplateError`."""
    if not isinstance(data, Mapping):
        raise _fail("template", "must be a mapping")
    for key in data:
        if key not in SECTIONS:
            raise _fail(str(key), "unknown section")
    if "heat_template_version" not in data:
        raise _fail("heat_template_version", "missing")
    version = parse_version(data["heat_template_version"])
    description = data.get("description", "")
    if not isinstance(description, str):
        raise _fail("description", "must be a string")
    parameters = {
        name: _parse_parameter(name, spec)
        for name, spec in _mapping(data.get("parameters"), "parameters").items()
    }
    resources = {
        name: _parse_resource(name, spec)
        for name, spec in _mapping(data.get("resources"), "resources").items()
    }
    for definition in resources.values():
        for needed in definition.depends_on:
            if needed not in resources:
                raise _fail(
                    f"resources.{definition.name}.depends_on", f"unknown resource {needed!r}"
                )
    outputs = {
        name: _parse_output(name, spec)
        for name, spec in _mapping(data.get("outputs"), "outputs").items()
    }
    return Template(version, description, parameters, resources, outputs, data)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(where, "must be a mapping")
    for key in value:
        if not isinstance(key, str) or not key:
            raise _fail(where, f"invalid name {key!r}")
    return value


def _parse_parameter(name: str, spec: Any) -> Parameter:
    where = f"parameters.{name}"
    if not isinstance(spec, Mapping):
        raise _fail(where, "must be a mapping")
    for key in spec:
        if key not in PARAMETER_KEYS:
            raise _fail(f"{where}.{key}", "unknown key")
    ptype = spec.get("type")
    if ptype not in PARAMETER_TYPES:
        raise _fail(f"{where}.type", f"must be one of {sorted(PARAMETER_TYPES)}, not {ptype!r}")
    raw_constraints = spec.get("constraints", [])
    if not isinstance(raw_constraints, list):
        raise _fail(f"{where}.constraints", "must be a list")
    constraints: list[Mapping[str, Any]] = []
    for index, constraint in enumerate(raw_constraints):
        cwhere = f"{where}.constraints[{index}]"
        if not isinstance(constraint, Mapping):
            raise _fail(cwhere, "must be a mapping")
        kinds = [key for key in constraint if key != "description"]
        if len(kinds) != 1 or kinds[0] not in CONSTRAINT_KINDS:
            raise _fail(cwhere, f"must have one of {sorted(CONSTRAINT_KINDS)}")
        _check_constraint_spec(kinds[0], constraint[kinds[0]], f"{cwhere}.{kinds[0]}")
        constraints.append(constraint)
    param = Parameter(
        name=name,
        type=ptype,
        default=spec.get("default"),
        has_default="default" in spec,
        constraints=tuple(constraints),
        description=str(spec.get("description", "")),
        immutable=bool(spec.get("immutable", False)),
        hidden=bool(spec.get("hidden", False)),
    )
    if param.has_default and param.default is not None:
        param.convert(param.default)  # a default that breaks its own constraints is an error
    return param


def _check_constraint_spec(kind: str, spec: Any, where: str) -> None:
    if kind == "allowed_values":
        if not isinstance(spec, list):
            raise _fail(where, "must be a list")
    elif kind in ("range", "length"):
        if not isinstance(spec, Mapping) or not spec or set(spec) - {"min", "max"}:
            raise _fail(where, "must be a mapping with min and/or max")
        for bound in spec.values():
            if isinstance(bound, bool) or not isinstance(bound, int | float):
                raise _fail(where, "min and max must be numbers")
    else:  # allowed_pattern
        if not isinstance(spec, str):
            raise _fail(where, "must be a string")
        try:
            re.compile(spec)
        except re.error as exc:
            raise _fail(where, f"invalid pattern: {exc}") from None


def _convert(ptype: str, value: Any, where: str) -> Any:
    if ptype == "string":
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise _fail(where, f"value {value!r} is not a string")
        return str(value)
    if ptype == "number":
        if isinstance(value, bool):
            raise _fail(where, f"value {value!r} is not a number")
        if isinstance(value, int | float):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                try:
                    return float(value)
                except ValueError:
                    pass
        raise _fail(where, f"value {value!r} is not a number")
    if ptype == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise _fail(where, f"value {value!r} is not a boolean")
    if ptype == "comma_delimited_list":
        if isinstance(value, list):
            return [str(item) for item in value]
        if isinstance(value, str):
            return [item.strip() for item in value.split(",")] if value else []
        raise _fail(where, f"value {value!r} is not a comma-delimited list")
    # json
    if isinstance(value, str):
        try:
            value = json.loads(value) if value else {}
        except ValueError:
            raise _fail(where, f"value {value!r} is not JSON") from None
    if not isinstance(value, Mapping | list):
        raise _fail(where, f"value {value!r} is not a JSON map or list")
    return value


def _check_constraint(ptype: str, constraint: Mapping[str, Any], value: Any, where: str) -> None:
    note = constraint.get("description")
    if "allowed_values" in constraint:
        allowed = constraint["allowed_values"]
        items = value if ptype == "comma_delimited_list" else [value]
        typed = [_convert(ptype, item, where) for item in allowed] if ptype == "number" else None
        for item in items:
            ok = item in typed if typed is not None else item in allowed
            if not ok:
                raise _fail(where, note or f"value {item!r} is not one of {allowed}")
    elif "range" in constraint:
        bounds = constraint["range"]
        low, high = bounds.get("min"), bounds.get("max")
        if (low is not None and value < low) or (high is not None and value > high):
            raise _fail(where, note or f"value {value!r} is not in the range {_span(bounds)}")
    elif "length" in constraint:
        bounds = constraint["length"]
        size = len(value)
        low, high = bounds.get("min"), bounds.get("max")
        if (low is not None and size < low) or (high is not None and size > high):
            raise _fail(where, note or f"length {size} is not in the range {_span(bounds)}")
    elif "allowed_pattern" in constraint:
        pattern = constraint["allowed_pattern"]
        if not isinstance(value, str) or re.fullmatch(pattern, value) is None:
            raise _fail(where, note or f"value {value!r} does not match pattern {pattern!r}")


def _span(bounds: Mapping[str, Any]) -> str:
    return f"[{bounds.get('min', '-inf')}, {bounds.get('max', 'inf')}]"


def _parse_resource(name: str, spec: Any) -> ResourceDefinition:
    where = f"resources.{name}"
    if not isinstance(spec, Mapping):
        raise _fail(where, "must be a mapping")
    for key in spec:
        if key not in RESOURCE_KEYS:
            raise _fail(f"{where}.{key}", "unknown key")
    rtype = spec.get("type")
    if not isinstance(rtype, str) or not rtype:
        raise _fail(f"{where}.type", "missing")
    properties = spec.get("properties") or {}
    if not isinstance(properties, Mapping):
        raise _fail(f"{where}.properties", "must be a mapping")
    metadata = spec.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise _fail(f"{where}.metadata", "must be a mapping")
    depends = spec.get("depends_on") or []
    if isinstance(depends, str):
        depends = [depends]
    if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
        raise _fail(f"{where}.depends_on", "must be a resource name or a list of them")
    if name in depends:
        raise _fail(f"{where}.depends_on", "a resource cannot depend on itself")
    return ResourceDefinition(name, rtype, dict(properties), tuple(depends), dict(metadata))


def _parse_output(name: str, spec: Any) -> Output:
    where = f"outputs.{name}"
    if not isinstance(spec, Mapping):
        raise _fail(where, "must be a mapping")
    for key in spec:
        if key not in OUTPUT_KEYS:
            raise _fail(f"{where}.{key}", "unknown key")
    if "value" not in spec:
        raise _fail(f"{where}.value", "missing")
    return Output(name, spec["value"], str(spec.get("description", "")))
