"""Clusters through the API, the task manager and the fake cloud: heterogeneous members,
the replica built from its primary, peer access, grow, shrink, delete, bad input, and a
member that fails to build."""

from __future__ import annotations

from typing import Any

import pytest
from plane import ControlPlane

from cellar.domain.replication import slot_name


def create_cluster(plane: ControlPlane, members: list[dict[str, Any]], **extra: Any) -> str:
    body = {"cluster": {"name": "pg", "instances": members, **extra}}
    r = plane.http.post(plane.url("/clusters"), json=body)
    assert r.status_code == 200, r.text
    view = r.json()["cluster"]
    assert view["task"]["name"] == "BUILDING"
    return str(view["id"])


def show(plane: ControlPlane, cid: str) -> dict[str, Any]:
    r = plane.http.get(plane.url(f"/clusters/{cid}"))
    assert r.status_code == 200, r.text
    return dict(r.json()["cluster"])


def act(plane: ControlPlane, cid: str, body: Any, status: int = 202) -> Any:
    r = plane.http.post(plane.url(f"/clusters/{cid}"), json=body)
    assert r.status_code == status, r.text
    return r


def member(flavor: str = "1", size: int = 1, **extra: Any) -> dict[str, Any]:
    return {"flavorRef": flavor, "volume": {"size": size}, **extra}


def test_a_heterogeneous_cluster_is_built_grown_shrunk_and_deleted(plane: ControlPlane) -> None:
    cid = create_cluster(
        plane,
        [member("2", 2), member("1", 1), member("1", 3)],
        access={"allowed_cidrs": ["10.9.0.0/16"]},
    )
    plane.run()
    view = show(plane, cid)
    assert view["task"]["name"] == "NONE", view
    members = view["instances"]
    assert [m["role"] for m in members] == ["primary", "replica", "replica"]
    assert [(m["flavor"]["id"], m["volume"]["size"]) for m in members] == [
        ("2", 2),
        ("1", 1),
        ("1", 3),
    ]
    assert all(m["status"] == "ACTIVE" and m["ip"] for m in members)
    # Each replica streams through its own slot on the primary.
    assert [m["replication_lag_bytes"] for m in members] == [None, 0, 0]
    primary, r1, r2 = members
    inst = plane.show(r1["id"])
    assert inst["cluster_id"] == cid and inst["replica_of"]["id"] == primary["id"]
    assert "replica_of" not in plane.show(primary["id"])

    # Peer access: every member lets each other member in on 5432, beyond the user's CIDR.
    groups = {g.name: g for g in plane.services.network.list_security_groups()}
    for m in members:
        cidrs = {r.cidr for r in groups[f"cellar-{m['id']}"].rules}
        others = {f"{o['ip'][0]}/32" for o in members if o["id"] != m["id"]}
        assert cidrs == {"10.9.0.0/16"} | others

    # Grow by one replica of its own size: nothing else is touched.
    servers_before = {s.id for s in plane.services.compute.list_servers()}
    act(plane, cid, {"grow": [member("3", 4, name="big")]})
    assert show(plane, cid)["task"]["name"] == "GROWING_CLUSTER"
    plane.run()
    view = show(plane, cid)
    assert view["task"]["name"] == "NONE"
    assert [m["name"] for m in view["instances"]] == ["pg-1", "pg-2", "pg-3", "big"]
    big = view["instances"][3]
    assert (big["role"], big["flavor"]["id"], big["volume"]["size"]) == ("replica", "3", 4)
    assert servers_before < {s.id for s in plane.services.compute.list_servers()}
    status = plane.services.guest.replication_status(primary["id"])
    assert {r.slot for r in status.replicas} == {slot_name(m["id"]) for m in view["instances"][1:]}

    # Shrink one replica: it is gone, and so are its rules in the others' groups.
    act(plane, cid, {"shrink": [{"id": r1["id"]}]})
    plane.run()
    view = show(plane, cid)
    assert [m["id"] for m in view["instances"]] == [primary["id"], r2["id"], big["id"]]
    assert plane.gone(r1["id"])
    gone_cidr = f"{r1['ip'][0]}/32"
    for g in plane.services.network.list_security_groups():
        assert gone_cidr not in {r.cidr for r in g.rules}
    assert plane.orphans() == []

    r = plane.http.delete(plane.url(f"/clusters/{cid}"))
    assert r.status_code == 202, r.text
    plane.run()
    assert plane.http.get(plane.url(f"/clusters/{cid}")).status_code == 404
    assert all(plane.gone(m["id"]) for m in view["instances"])
    assert plane.resources() == {
        "servers": 0,
        "volumes": 0,
        "security_groups": 0,
        "dns_records": 0,
    }
    assert plane.orphans() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cluster": {"name": "pg", "instances": []}}, "cluster.instances"),
        (
            {"cluster": {"name": "pg", "instances": [member("nope")]}},
            "cluster.instances[0].flavorRef",
        ),
        (
            {"cluster": {"name": "pg", "instances": [member(size=0)]}},
            "cluster.instances[0].volume.size",
        ),
        ({"cluster": {"name": "", "instances": [member()]}}, "cluster.name"),
        (
            {"cluster": {"name": "pg", "instances": [member(name="a"), member(name="a")]}},
            "cluster.instances",
        ),
    ],
)
def test_bad_input_names_the_field_and_creates_nothing(
    plane: ControlPlane, body: dict[str, Any], field: str
) -> None:
    r = plane.http.post(plane.url("/clusters"), json=body)
    assert r.status_code == 400, r.text
    assert field in r.json()["badRequest"]["message"], r.text
    assert plane.http.get(plane.url("/clusters")).json()["clusters"] == []
    assert plane.http.get(plane.url("/instances")).json()["instances"] == []


def test_shrink_and_grow_refusals(plane: ControlPlane) -> None:
    cid = create_cluster(plane, [member(), member()])
    # Mid-operation: a grow is refused and nothing is written.
    r = act(plane, cid, {"grow": [member()]}, status=422)
    assert "BUILDING" in r.text
    plane.run()
    primary, replica = show(plane, cid)["instances"]
    for body, field in [
        ({"shrink": [{"id": primary["id"]}]}, "shrink[0].id"),
        ({"shrink": [{"id": "nope"}]}, "shrink[0].id"),
        ({"shrink": [{"id": replica["id"]}, {"id": replica["id"]}]}, "shrink[1].id"),
        ({"grow": [member("nope")]}, "grow[0].flavorRef"),
        ({"grow": [member()], "shrink": [{"id": replica["id"]}]}, "grow or shrink"),
    ]:
        r = act(plane, cid, body, status=400)
        assert field in r.text, (body, r.text)
    assert len(show(plane, cid)["instances"]) == 2
    assert show(plane, cid)["task"]["name"] == "NONE"


def test_a_replica_that_fails_to_build_leaves_the_cluster_in_error_and_nothing_behind(
    plane: ControlPlane,
) -> None:
    cid = create_cluster(plane, [member(), member()])
    # The second server create fails for good: the replica's.
    plane.cloud.inject_fault("compute.create_server", nth=2)
    plane.run()
    view = show(plane, cid)
    assert view["task"]["name"] == "ERROR"
    assert "fault" in view and view["fault"]["message"]
    assert {m["status"] for m in view["instances"]} == {"ERROR"}
    assert plane.resources()["servers"] == 0 and plane.orphans() == []
    r = plane.http.delete(plane.url(f"/clusters/{cid}"))
    assert r.status_code == 202
    plane.run()
    assert plane.http.get(plane.url(f"/clusters/{cid}")).status_code == 404
    assert plane.http.get(plane.url("/instances")).json()["instances"] == []


def test_a_grow_after_a_shrink_names_members_the_user_left_unnamed(plane: ControlPlane) -> None:
    cid = create_cluster(plane, [member(), member(), member()])
    plane.run()
    pg2 = show(plane, cid)["instances"][1]["id"]
    act(plane, cid, {"shrink": [{"id": pg2}]})
    plane.run()
    # Two members left: an unnamed new one is not `pg-3` again (taken), nor `pg-4` when
    # the same request asks for that name (nor a removed member's name).
    act(plane, cid, {"grow": [member(), member(name="pg-4")]})
    plane.run()
    assert [m["name"] for m in show(plane, cid)["instances"]] == ["pg-1", "pg-3", "pg-5", "pg-4"]
