"""The cluster template: a list of heterogeneous members, grown and shrunk as data."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from cellar.orchestration.templates import (
    cluster_parameters,
    cluster_template,
    member_prefix,
    with_members,
    without_members,
)
from orchestration.templates.helpers import (
    LARGE,
    SMALL,
    assert_references_exist,
    functions,
    requires,
    spec,
)

A, B, C = spec("a"), spec("b"), spec("c-1", flavor=LARGE, volume_size_gb=40)


def member(template: dict[str, Any], instance_id: str) -> dict[str, Any]:
    prefix = member_prefix(spec(instance_id))
    return {n: r for n, r in template["resources"].items() if n.startswith(prefix)}


def guest(template: dict[str, Any], instance_id: str) -> dict[str, Any]:
    server = template["resources"][f"{member_prefix(spec(instance_id))}server"]
    [(_, [data])] = functions(server["properties"]["user_data"], "list_join")
    assert isinstance(data, dict)
    return data


def test_structure() -> None:
    template = cluster_template([A, B, C], primary="a")
    assert_references_exist(template)
    assert member_prefix(C) == "m_c_1_"
    assert "m_a_server" in template["resources"]
    assert len(template["resources"]) == 3 * 7
    assert {"m_a_address", "m_b_hostname", "m_c_1_server_id"} <= set(template["outputs"])


def test_replicas_wait_for_the_primary_and_get_its_address() -> None:
    template = cluster_template([A, B, C], primary="a", network="db-net")
    for replica in ("b", "c-1"):
        server = template["resources"][f"{member_prefix(spec(replica))}server"]
        assert server["depends_on"] == ["m_a_ready"]
        assert "m_a_server" in requires(server)
        data = guest(template, replica)
        assert data["role"] == "replica"
        assert data["primary_address"] == {"get_attr": ["m_a_server", "networks", "db-net", 0]}
        assert data["primary_instance_id"] == "a"
    primary = template["resources"]["m_a_server"]
    assert "depends_on" not in primary
    assert guest(template, "a")["role"] == "primary"


def test_peers_without_a_primary() -> None:
    template = cluster_template([A, B])
    assert all("depends_on" not in r for r in template["resources"].values() if "server" in r)
    assert "role" not in guest(template, "a")


def test_members_are_heterogeneous() -> None:
    template = cluster_template([A, C], primary="a")
    assert template["resources"]["m_c_1_server"]["properties"]["flavor"] == {
        "get_param": "m_c_1_flavor"
    }
    assert template["resources"]["m_c_1_volume"]["properties"]["size"] == {
        "get_param": "m_c_1_volume_size"
    }
    assert cluster_parameters([A, C]) == {
        "m_a_flavor": SMALL.id,
        "m_a_volume_size": 2,
        "m_c_1_flavor": LARGE.id,
        "m_c_1_volume_size": 40,
    }
    required = {n for n, p in template["parameters"].items() if "default" not in p}
    assert required == set(cluster_parameters([A, C]))


def test_growing_and_shrinking_leave_the_other_members_alone() -> None:
    two = cluster_template([A, B], primary="a")
    three = cluster_template([A, B, C], primary="a")
    after_shrink = cluster_template([A, C], primary="a")
    for instance_id in ("a", "b"):
        assert member(two, instance_id) == member(three, instance_id)
    for instance_id in ("a", "c-1"):
        assert member(three, instance_id) == member(after_shrink, instance_id)
    assert set(three["resources"]) - set(two["resources"]) == set(member(three, "c-1"))
    assert not member(after_shrink, "b")


def test_refuses_a_stranger_as_primary_and_duplicate_members() -> None:
    with pytest.raises(ValueError):
        cluster_template([A, B], primary="z")
    with pytest.raises(ValueError):
        cluster_template([A, spec("a")])


def replica(s: Any, of: str) -> Any:
    return dataclasses.replace(s, replica_of=of)


def test_a_stored_template_edited_equals_the_one_built_from_the_new_member_list() -> None:
    data = {"a": {"k": "1"}, "b": {"k": "2"}, "c-1": {"k": "3", "secret": "s"}}
    two = cluster_template([A, B], primary="a", network="db-net", user_data=data)
    three = cluster_template([A, B, C], primary="a", network="db-net", user_data=data)
    grown = with_members(two, [replica(C, "a")], user_data=data)
    assert grown == three
    # Idempotent: a member the template has already is left as it is.
    assert with_members(grown, [replica(C, "a")], user_data=data) == three
    assert two["resources"]["m_a_server"] == grown["resources"]["m_a_server"]
    shrunk = without_members(three, ["b"])
    assert shrunk == cluster_template([A, C], primary="a", network="db-net", user_data=data)
    assert without_members(shrunk, ["b"]) == shrunk


def test_removing_a_member_leaves_one_whose_id_extends_its_own() -> None:
    a1 = spec("a-1")
    template = cluster_template([A, a1, B], primary="a")
    assert without_members(template, ["a"])["resources"].keys() == {
        n for n in template["resources"] if not n.startswith("m_a_") or n.startswith("m_a_1_")
    }


def test_a_grow_refuses_a_primary_the_template_lacks() -> None:
    with pytest.raises(ValueError):
        with_members(cluster_template([A], primary="a"), [replica(B, "z")])
