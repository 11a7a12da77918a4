"""Specs and a reference walker for template tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cellar.domain.specs import FlavorSpec, InstanceSpec

SMALL = FlavorSpec(id="f-small", name="small", ram_mb=512, vcpus=1)
LARGE = FlavorSpec(id="f-large", name="large", ram_mb=4096, vcpus=4)


def spec(
    instance_id: str = "i-1",
    *,
    flavor: FlavorSpec = SMALL,
    volume_size_gb: int = 2,
    ports: tuple[int, ...] = (5432,),
    allowed_cidrs: tuple[str, ...] = ("0.0.0.0/0",),
) -> InstanceSpec:
    return InstanceSpec(
        instance_id=instance_id,
        name=f"db-{instance_id}",
        project_id="p-1",
        flavor=flavor,
        volume_size_gb=volume_size_gb,
        datastore="postgresql",
        datastore_version="15",
        image="cellar-postgresql-15",
        ports=ports,
        allowed_cidrs=allowed_cidrs,
    )


def functions(node: Any, name: str) -> Iterator[Any]:
    """Every argument of intrinsic function `name` found in `node`."""
    if isinstance(node, dict):
        if len(node) == 1 and name in node:
            yield node[name]
        for value in node.values():
            yield from functions(value, name)
    elif isinstance(node, list):
        for item in node:
            yield from functions(item, name)


def requires(resource: dict[str, Any]) -> set[str]:
    """The resources `resource` depends on, as Heat computes it: depends_on plus every
    get_resource and get_attr in its properties and metadata."""
    body = {k: resource.get(k) for k in ("properties", "metadata")}
    names = set(functions(body, "get_resource"))
    names |= {args[0] for args in functions(body, "get_attr")}
    depends = resource.get("depends_on", [])
    names |= {depends} if isinstance(depends, str) else set(depends)
    return names


def closure(resources: dict[str, Any], name: str) -> set[str]:
    """Everything `name` depends on, directly or not."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        for required in requires(resources[todo.pop()]):
            if required not in seen:
                seen.add(required)
                todo.append(required)
    return seen


def assert_references_exist(template: dict[str, Any]) -> None:
    resources, parameters = template["resources"], template["parameters"]
    for name, resource in resources.items():
        assert set(resource) <= {"type", "properties", "metadata", "depends_on"}, name
        assert requires(resource) <= set(resources), name
    assert set(functions(template, "get_param")) <= set(parameters)
    assert {args[0] for args in functions(template, "get_attr")} <= set(resources)
    assert set(functions(template, "get_resource")) <= set(resources)
    for name in resources:
        assert name not in closure(resources, name), f"{name} depends on itself"
