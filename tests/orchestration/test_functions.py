"""Intrinsic functions, dependency extraction and cycles."""

from __future__ import annotations

from typing import Any

import pytest

from cellar.orchestration.local import functions
from cellar.orchestration.local.template import TemplateError, parse_template


class Fake:
    def __init__(self) -> None:
        self.params: dict[str, Any] = {"name": "db", "cfg": {"a": [10, 20]}, "n": 3}

    def param(self, name: str) -> Any:
        return self.params[name]

    def resource_ref(self, name: str) -> Any:
        return f"id-{name}"

    def resource_attr(self, name: str, attribute: str | None) -> Any:
        return {"addr": {"ips": ["10.0.0.1"]}}.get(attribute or "")


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ({"get_param": "name"}, "db"),
        ({"get_param": ["cfg", "a", 1]}, 20),
        ({"get_param": ["cfg", "nope"]}, ""),
        ({"get_resource": "vol"}, "id-vol"),
        ({"get_attr": ["srv", "addr", "ips", 0]}, "10.0.0.1"),
        ({"list_join": [",", ["a", {"get_param": "name"}], ["c"]]}, "a,db,c"),
        ({"list_join": ["-", [{"k": 1}, None, 2]]}, '{"k": 1}--2'),
        (
            {
                "str_replace": {
                    "template": "host=$h port=$port",
                    "params": {"$h": {"get_resource": "s"}, "$port": 5432},
                }
            },
            "host=id-s port=5432",
        ),
        ({"str_replace": {"template": "aab", "params": {"a": "x", "aa": "y"}}}, "yb"),
        ([{"k": {"get_param": "n"}}], [{"k": 3}]),
    ],
)
def test_resolve(snippet: Any, expected: Any) -> None:
    assert functions.resolve(snippet, Fake()) == expected


def template(resources: dict[str, Any]) -> Any:
    return parse_template({"heat_template_version": "rocky", "resources": resources})


def test_dependencies_implicit_and_explicit() -> None:
    t = template(
        {
            "a": {"type": "OS::Heat::None"},
            "b": {"type": "OS::Heat::None", "properties": {"x": {"get_resource": "a"}}},
            "c": {"type": "OS::Heat::None", "metadata": {"y": {"get_attr": ["b", "v"]}}},
            "d": {"type": "OS::Heat::None", "depends_on": ["a", "c"]},
        }
    )
    assert functions.dependencies(t) == {
        "a": frozenset(),
        "b": {"a"},
        "c": {"b"},
        "d": {"a", "c"},
    }


def test_cycle_names_its_resources() -> None:
    t = template(
        {
            "free": {"type": "OS::Heat::None"},
            "a": {"type": "OS::Heat::None", "depends_on": "c"},
            "b": {"type": "OS::Heat::None", "properties": {"x": {"get_resource": "a"}}},
            "c": {"type": "OS::Heat::None", "properties": {"x": {"get_attr": ["b", "v"]}}},
        }
    )
    with pytest.raises(TemplateError) as caught:
        functions.check_acyclic(functions.dependencies(t))
    assert caught.value.field == "resources"
    assert "circular dependency" in str(caught.value)
    for name in ("'a'", "'b'", "'c'"):
        assert name in str(caught.value)
    assert "free" not in str(caught.value)
