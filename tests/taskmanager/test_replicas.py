"""Trove's replication door on the fake cloud: `replica_of`/`replica_count` on create, the
replicas inside their primary's (implicit) group, the instance views, promote, detach,
delete, and what is refused."""

from __future__ import annotations

from typing import Any

import pytest
from plane import ControlPlane

from cellar.domain.replication import slot_name


def post(plane: ControlPlane, **instance: Any) -> Any:
    return plane.http.post(plane.url("/instances"), json={"instance": instance})


def primary(plane: ControlPlane) -> str:
    r = post(plane, name="main", flavorRef="2", volume={"size": 2})
    assert r.status_code == 200, r.text
    plane.run()
    return str(r.json()["instance"]["id"])


def test_replicas_of_a_lone_instance_copy_it_and_join_its_group(plane: ControlPlane) -> None:
    pid = primary(plane)
    r = post(plane, name="copy", replica_of="main", replica_count=2)  # by name
    assert r.status_code == 200, r.text
    first = r.json()["instance"]
    assert first["name"] == "copy" and first["replica_of"]["id"] == pid
    plane.run()

    shown = plane.show(pid)
    replicas = [x["id"] for x in shown["replicas"]]
    assert len(replicas) == 2 and first["id"] in replicas
    for rid in replicas:
        replica = plane.show(rid)
        assert replica["status"] == "ACTIVE", replica
        # Without their own flavor and volume, replicas copy the primary's.
        assert (replica["flavor"]["id"], replica["volume"]["size"]) == ("2", 2)
        assert replica["replica_of"]["id"] == pid
    assert sorted(plane.show(rid)["name"] for rid in replicas) == ["copy", "copy-2"]
    status = plane.services.guest.replication_status(pid)
    assert {s.slot for s in status.replicas} == {slot_name(rid) for rid in replicas}
    # The group is the primary's, not a cluster of the user's.
    assert plane.http.get(plane.url("/clusters")).json()["clusters"] == []

    # A replica of its own size (never smaller than its primary's volume).
    r = post(plane, name="big", replica_of=pid, flavorRef="3", volume={"size": 4})
    assert r.status_code == 200, r.text
    big = r.json()["instance"]["id"]
    plane.run()
    assert (plane.show(big)["flavor"]["id"], plane.show(big)["volume"]["size"]) == ("3", 4)
    assert plane.orphans() == []


def test_promote_detach_and_delete_through_the_instances(plane: ControlPlane) -> None:
    pid = primary(plane)
    r = post(plane, name="r", replica_of=pid, replica_count=3)
    assert r.status_code == 200, r.text
    plane.run()
    r1, r2, r3 = (x["id"] for x in plane.show(pid)["replicas"])

    plane.action(r1, {"promote_to_replica_source": {}})
    plane.run()
    assert "replica_of" not in plane.show(r1)
    assert {x["id"] for x in plane.show(r1)["replicas"]} == {pid, r2, r3}
    assert plane.show(pid)["replica_of"]["id"] == r1

    # Detach: r2 is promoted into an instance of its own.
    r = plane.http.patch(plane.url(f"/instances/{r2}"), json={"instance": {"replica_of": None}})
    assert r.status_code == 202, r.text
    plane.run()
    alone = plane.show(r2)
    assert alone["status"] == "ACTIVE" and "replica_of" not in alone
    assert alone.get("cluster_id") is None
    assert plane.services.guest.replication_status(r2).role.value == "primary"
    assert {x["id"] for x in plane.show(r1)["replicas"]} == {pid, r3}
    assert slot_name(r2) not in {
        s.slot for s in plane.services.guest.replication_status(r1).replicas
    }
    # It archives into a stanza of its own now; the group (its primary r1 since the
    # switchover) into the one its first primary founded.
    for member, stanza in ((r2, f"cellar-{r2}/"), (r1, f"cellar-{pid}/"), (pid, f"cellar-{pid}/")):
        body = {"backup": {"name": "b", "instance": member}}
        made = plane.http.post(plane.url("/backups"), json=body)
        assert made.status_code == 202, made.text
        plane.run()
        taken = plane.http.get(plane.url(f"/backups/{made.json()['backup']['id']}")).json()
        assert taken["backup"]["status"] == "COMPLETED", taken["backup"]["fail_reason"]
        assert taken["backup"]["locationRef"].startswith(stanza), (member, taken)

    # A replica deleted on its own leaves the group as a shrink does.
    plane.delete(r3)
    plane.run()
    assert plane.gone(r3)
    assert {x["id"] for x in plane.show(r1)["replicas"]} == {pid}
    # The primary of replicas is not deleted from under them.
    r = plane.http.delete(plane.url(f"/instances/{r1}"))
    assert r.status_code == 400 and "primary of 1 replicas" in r.text, r.text
    plane.delete(pid)
    plane.run()
    plane.delete(r1)
    plane.delete(r2)
    plane.run()
    assert plane.resources()["servers"] == 0
    assert plane.orphans() == []


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ({"replica_of": "nope"}, "instance.replica_of", "no instance 'nope'"),
        ({"replica_of": "main", "volume": {"size": 1}}, "instance.volume.size", "at least"),
        ({"replica_of": "main", "users": [{"name": "u", "password": "secret-pw-1"}]},
         "instance.users", "primary's"),
        ({"replica_of": "main", "replica_count": 0}, "instance.replica_count", ""),
        ({"replica_of": "main", "flavorRef": "99"}, "instance.flavorRef", "'99' does not exist"),
        ({"replica_count": 2, "flavorRef": "1", "volume": {"size": 1}}, "instance.replica_count",
         "goes with replica_of"),
        ({"volume": {"size": 1}}, "instance.flavorRef", "is required"),
        ({"flavorRef": "1"}, "instance.volume", "is required"),
    ],
)  # fmt: skip
def test_bad_replica_requests_name_the_field(
    plane: ControlPlane, extra: dict[str, Any], field: str, words: str
) -> None:
    primary(plane)
    servers = plane.resources()["servers"]
    r = post(plane, name="x", **extra)
    assert r.status_code == 400, r.text
    assert field in r.text and words in r.text, r.text
    assert plane.resources()["servers"] == servers


def test_a_replica_of_a_replica_is_refused(plane: ControlPlane) -> None:
    pid = primary(plane)
    r = post(plane, name="r", replica_of=pid)
    assert r.status_code == 200, r.text
    plane.run()
    r = post(plane, name="rr", replica_of="r")
    assert r.status_code == 400 and "itself a replica" in r.text, r.text
