"""Template and parameter validation: errors name the section and the key path."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from cellar.domain.errors import BadRequest
from cellar.orchestration.local.engine import StackEngine
from cellar.orchestration.local.template import TemplateError, parse_template


def hot(**sections: Any) -> dict[str, Any]:
    return {"heat_template_version": "2018-08-31", **sections}


@pytest.mark.parametrize("version", ["2018-08-31", "rocky", "wallaby", datetime.date(2021, 4, 16)])
def test_accepted_versions(version: Any) -> None:
    parse_template({"heat_template_version": version})


@pytest.mark.parametrize("version", ["2016-10-14", "queens", "2030-01-01", None])
def test_refused_versions(version: Any) -> None:
    with pytest.raises(TemplateError, match=r"^heat_template_version: unsupported"):
        parse_template({"heat_template_version": version})


def test_error_is_a_bad_request_naming_the_key() -> None:
    template = hot(resources={"server": {"type": "OS::Heat::None", "depends_on": "volum"}})
    with pytest.raises(BadRequest) as caught:
        parse_template(template)
    assert str(caught.value) == "resources.server.depends_on: unknown resource 'volum'"
    assert caught.value.field == "resources.server.depends_on"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (hot(resorces={}), "resorces: unknown section"),
        (hot(resources={"a": {"properties": {}}}), "resources.a.type: missing"),
        (
            hot(resources={"a": {"type": "OS::Heat::None", "propertes": {}}}),
            "resources.a.propertes: unknown key",
        ),
        (hot(outputs={"o": {"description": "x"}}), "outputs.o.value: missing"),
        (hot(parameters={"p": {"type": "integer"}}), "parameters.p.type: must be one of"),
    ],
)
def test_structure_errors(template: dict[str, Any], message: str) -> None:
    with pytest.raises(TemplateError, match="^" + message.replace(".", r"\.")):
        parse_template(template)


def test_engine_checks_types_properties_functions(engine: StackEngine) -> None:
    cases = [
        ({"a": {"type": "OS::Nope"}}, "resources.a.type: unknown resource type 'OS::Nope'"),
        (
            {"a": {"type": "OS::Heat::Value", "properties": {}}},
            "resources.a.properties.value: property is required",
        ),
        (
            {"a": {"type": "OS::Heat::TestResource", "properties": {"valu": 1}}},
            "resources.a.properties.valu: unknown property",
        ),
        (
            {"a": {"type": "OS::Heat::Value", "properties": {"value": {"get_resource": "b"}}}},
            "resources.a.properties.value.get_resource: unknown resource 'b'",
        ),
        (
            {"a": {"type": "OS::Heat::Value", "properties": {"value": {"get_param": "nope"}}}},
            "resources.a.properties.value.get_param: unknown parameter 'nope'",
        ),
        (
            {
                "a": {"type": "OS::Heat::Value", "properties": {"value": 1}},
                "b": {
                    "type": "OS::Heat::Value",
                    "properties": {"value": {"get_attr": ["a", "nope"]}},
                },
            },
            "resources.b.properties.value.get_attr: resource type OS::Heat::Value has no "
            "attribute 'nope'",
        ),
    ]
    for resources, message in cases:
        with pytest.raises(TemplateError) as caught:
            engine.validate(hot(resources=resources))
        assert str(caught.value) == message


FLAVOR = {
    "type": "string",
    "default": "small",
    "constraints": [{"allowed_values": ["small", "large"]}],
}


def params_template(**parameters: Any) -> dict[str, Any]:
    return hot(parameters=parameters)


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ({"type": "number"}, "3", 3),
        ({"type": "number"}, "2.5", 2.5),
        ({"type": "boolean"}, "yes", True),
        ({"type": "boolean"}, False, False),
        ({"type": "comma_delimited_list"}, "a, b,c", ["a", "b", "c"]),
        ({"type": "json"}, '{"k": [1]}', {"k": [1]}),
        ({"type": "string"}, 5, "5"),
    ],
)
def test_parameter_types(spec: dict[str, Any], value: Any, expected: Any) -> None:
    template = parse_template(params_template(p=spec))
    assert template.resolve_parameters({"p": value}) == {"p": expected}


@pytest.mark.parametrize(
    ("spec", "value", "message"),
    [
        (FLAVOR, "x", "parameters.flavor: value 'x' is not one of ['small', 'large']"),
        (
            {"type": "number", "constraints": [{"range": {"min": 1, "max": 5}}]},
            9,
            "parameters.flavor: value 9 is not in the range [1, 5]",
        ),
        (
            {"type": "string", "constraints": [{"length": {"min": 2}}]},
            "a",
            "parameters.flavor: length 1 is not in the range [2, inf]",
        ),
        (
            {"type": "string", "constraints": [{"allowed_pattern": "[a-z]+"}]},
            "ab1",
            "parameters.flavor: value 'ab1' does not match pattern '[a-z]+'",
        ),
        (
            {
                "type": "string",
                "constraints": [{"allowed_pattern": "[a-z]+", "description": "lowercase only"}],
            },
            "A",
            "parameters.flavor: lowercase only",
        ),
        ({"type": "boolean"}, "maybe", "parameters.flavor: value 'maybe' is not a boolean"),
        ({"type": "number"}, "many", "parameters.flavor: value 'many' is not a number"),
    ],
)
def test_parameter_constraints(spec: dict[str, Any], value: Any, message: str) -> None:
    template = parse_template(params_template(flavor=spec))
    with pytest.raises(TemplateError) as caught:
        template.resolve_parameters({"flavor": value})
    assert str(caught.value) == message


def test_parameter_defaults_required_and_unknown() -> None:
    template = parse_template(params_template(flavor=FLAVOR, size={"type": "number"}))
    assert template.resolve_parameters({"size": 1}) == {"flavor": "small", "size": 1}
    with pytest.raises(TemplateError, match=r"^parameters\.size: a value is required"):
        template.resolve_parameters({})
    with pytest.raises(TemplateError, match=r"^parameters\.colour: not defined"):
        template.resolve_parameters({"size": 1, "colour": "red"})


def test_hidden_parameters_are_shown_masked_as_heat_does() -> None:
    template = parse_template(
        params_template(flavor=FLAVOR, secret={"type": "string", "hidden": True})
    )
    values = {"flavor": "small", "secret": "s3cr3t"}
    assert template.resolve_parameters(values) == values  # the engine uses the value
    assert template.shown_parameters(values) == {"flavor": "small", "secret": "******"}


def test_bad_default_refused() -> None:
    with pytest.raises(TemplateError, match=r"^parameters\.flavor: value 'huge'"):
        parse_template(params_template(flavor={**FLAVOR, "default": "huge"}))
