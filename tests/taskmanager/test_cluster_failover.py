"""Switchover and failover of a cluster through the API on the fake cloud: the roles move,
the old primary follows the new one (switchover) or is fenced (failover), the replicas
re-point, the cluster's events say what happened, and what cannot be done is refused."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from plane import ControlPlane
from test_clusters import create_cluster, member, show

from cellar.db.engine import make_session_factory
from cellar.domain.replication import lsn_to_text
from cellar.drivers.dns.base import set_addresses
from cellar.drivers.fake.guest import set_wal
from cellar.taskmanager.failover_watch import ClusterWatch


def build(plane: ControlPlane, n: int = 3) -> tuple[str, list[dict[str, Any]]]:
    cid = create_cluster(plane, [member("2", 2)] + [member("1", 1) for _ in range(n - 1)])
    plane.run()
    view = show(plane, cid)
    assert view["task"]["name"] == "NONE", (view.get("fault"), cluster_events(plane, cid))
    return cid, view["instances"]


def roles(plane: ControlPlane, cid: str) -> dict[str, str]:
    return {m["name"]: m["role"] for m in show(plane, cid)["instances"]}


def cluster_events(plane: ControlPlane, cid: str) -> list[dict[str, Any]]:
    r = plane.http.get(plane.url(f"/clusters/{cid}/events"))
    assert r.status_code == 200, r.text
    return list(r.json()["events"])


def test_promote_to_replica_source_switches_roles_and_the_old_primary_follows(
    plane: ControlPlane,
) -> None:
    cid, (primary, r1, r2) = build(plane)
    guest = plane.services.guest
    set_wal(plane.cloud, primary["id"], 0x3000060)

    plane.action(r1["id"], {"promote_to_replica_source": {}})
    assert show(plane, cid)["task"]["name"] == "PROMOTING"
    assert plane.show(r1["id"])["status"] == "PROMOTE"
    plane.run()

    view = show(plane, cid)
    assert view["task"]["name"] == "NONE", (view.get("fault"), cluster_events(plane, cid))
    assert roles(plane, cid) == {"pg-1": "replica", "pg-2": "primary", "pg-3": "replica"}
    assert all(m["status"] == "ACTIVE" for m in view["instances"])
    # The rows and the guests agree: everyone streams from the new primary.
    assert plane.show(primary["id"])["replica_of"]["id"] == r1["id"]
    assert plane.show(r2["id"])["replica_of"]["id"] == r1["id"]
    assert "replica_of" not in plane.show(r1["id"])
    new = guest.replication_status(r1["id"])
    assert new.role.value == "primary" and new.lsn == 0x3000060
    assert {r.slot for r in new.replicas} == {
        f"cellar_{m['id'].replace('-', '_')}" for m in (primary, r2)
    }
    steps = {e["step"]: e for e in cluster_events(plane, cid) if e["outcome"] == "succeeded"}
    assert "no transaction lost" in steps["pg-2:wal.catch_up"]["message"]
    assert lsn_to_text(0x3000060) in steps["pg-2:wal.catch_up"]["message"]
    assert "pg-1:follow" in steps and "pg-3:follow" in steps

    # And back again: the old primary is a replica like any other.
    plane.action(primary["id"], {"promote_to_replica_source": {}})
    plane.run()
    assert roles(plane, cid) == {"pg-1": "primary", "pg-2": "replica", "pg-3": "replica"}
    assert plane.orphans() == []


def test_promote_is_refused_on_the_primary_on_a_lone_instance_and_mid_operation(
    plane: ControlPlane,
) -> None:
    cid, (primary, r1, _r2) = build(plane)
    body = {"promote_to_replica_source": {}}
    r = plane.http.post(plane.url(f"/instances/{primary['id']}/action"), json=body)
    assert r.status_code == 400 and "primary already" in r.text, r.text
    lone = plane.create("lone")
    plane.run()
    r = plane.http.post(plane.url(f"/instances/{lone}/action"), json=body)
    assert r.status_code == 400 and "promote_to_replica_source" in r.text, r.text
    # A live primary is not ejected: that would be a failover nobody needed.
    r = plane.http.post(
        plane.url(f"/instances/{primary['id']}/action"), json={"eject_replica_source": {}}
    )
    assert r.status_code == 400 and "still answers" in r.text, r.text

    plane.action(r1["id"], body)  # not run yet: the cluster is PROMOTING
    r = plane.http.post(plane.url(f"/instances/{r1['id']}/action"), json=body)
    assert r.status_code == 422, r.text
    r = plane.http.post(plane.url(f"/instances/{primary['id']}/action"), json={"restart": {}})
    assert r.status_code == 422 and "PROMOTING" in r.text, r.text
    r = plane.http.post(plane.url(f"/clusters/{cid}"), json={"grow": [member()]})
    assert r.status_code == 422, r.text
    plane.run()
    assert show(plane, cid)["task"]["name"] == "NONE"


def test_eject_of_a_dead_primary_promotes_the_most_advanced_replica_and_fences_the_old(
    plane: ControlPlane,
) -> None:
    cid, (primary, r1, r2) = build(plane, 3)
    # The primary had written up to 0x5000; r2 received all of it, r1 less.
    set_wal(plane.cloud, primary["id"], 0x5000)
    set_wal(plane.cloud, r1["id"], 0x4000)
    set_wal(plane.cloud, r2["id"], 0x5000)
    # The primary's server dies (its guest no longer answers).
    server_id = plane.tm.store.get(primary["id"]).compute_instance_id
    assert server_id
    plane.services.compute.delete_server(server_id)

    plane.action(primary["id"], {"eject_replica_source": {}})
    assert plane.show(primary["id"])["status"] == "EJECT"
    plane.run()

    view = show(plane, cid)
    assert view["task"]["name"] == "NONE", (view.get("fault"), cluster_events(plane, cid))
    assert roles(plane, cid) == {"pg-1": "replica", "pg-2": "replica", "pg-3": "primary"}
    assert plane.show(r1["id"])["replica_of"]["id"] == r2["id"]
    old = plane.show(primary["id"])
    assert old["status"] == "ERROR" and "fenced" in old["fault"]["message"]
    # Fenced: nothing may reach the old primary any more.
    group = plane.services.network.get_security_group(
        plane.tm.store.get(primary["id"]).security_group_id or ""
    )
    assert group.rules == ()
    steps = {e["step"]: e for e in cluster_events(plane, cid) if e["outcome"] == "succeeded"}
    assert "pg-1:fence" in steps and "ingress rules removed" in steps["pg-1:fence"]["message"]
    assert "pg-3 promoted at LSN 0/5000" in steps["wal.lost_window"]["message"]

    # The fenced member is shrunk away; the cluster carries on.
    r = plane.http.post(plane.url(f"/clusters/{cid}"), json={"shrink": [{"id": primary["id"]}]})
    assert r.status_code == 202, r.text
    plane.run()
    assert [m["name"] for m in show(plane, cid)["instances"]] == ["pg-3", "pg-2"]
    assert plane.orphans() == []


@pytest.mark.parametrize("action", ["promote_to_replica_source", "eject_replica_source"])
def test_group_actions_take_no_arguments(plane: ControlPlane, action: str) -> None:
    _cid, (_primary, r1, _r2) = build(plane)
    r = plane.http.post(plane.url(f"/instances/{r1['id']}/action"), json={action: {"x": 1}})
    assert r.status_code == 400 and action in r.text, r.text


def test_automatic_failover_waits_for_the_primary_to_be_silent_long_enough(
    plane: ControlPlane,
) -> None:
    cid, (primary, r1, _r2) = build(plane, 3)
    guest = plane.services.guest
    set_wal(plane.cloud, primary["id"], 0x9000)
    set_wal(plane.cloud, r1["id"], 0x8000)
    settings = dataclasses.replace(plane.settings, cluster_failover_after_s=0.3)
    skipped = [0.0]  # seconds the watch's clock is ahead of the real one
    watch = ClusterWatch(
        settings,
        make_session_factory(plane.engine),
        guest,
        clock=lambda: time.monotonic() + skipped[0],
    )
    assert watch.check() == []  # the primary answers: it is at 0x9000
    skipped[0] += 0.4  # longer than cluster_failover_after_s: an answering primary stays
    assert watch.check() == []

    server_id = plane.tm.store.get(primary["id"]).compute_instance_id or ""
    plane.services.compute.delete_server(server_id)
    assert watch.check() == []  # silent from now on: not yet for long enough
    deadline = time.monotonic() + 10
    while (failed := watch.check()) == [] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert failed == [cid]
    assert watch.check() == []  # the cluster is PROMOTING: one job only
    assert show(plane, cid)["task"]["name"] == "PROMOTING"
    plane.run()

    assert roles(plane, cid) == {"pg-1": "replica", "pg-2": "replica", "pg-3": "primary"}
    events = cluster_events(plane, cid)
    lost = next(e for e in events if e["step"] == "wal.lost_window")
    # r2 followed the primary to 0x9000 (no WAL of its own set): nothing lost.
    assert "last seen at 0/9000: lost window 0 bytes" in lost["message"], lost
    assert any(e["operation"] == "failover_cluster" for e in events)


def endpoint(plane: ControlPlane, suffix: str) -> list[str]:
    record = plane.services.dns.find_record(f"pg-{suffix}.{plane.settings.dns_zone}", "A")
    return [] if record is None else set_addresses(record.data)


def test_the_endpoints_follow_the_primary_and_the_replicas(plane: ControlPlane) -> None:
    cid, (primary, r1, r2) = build(plane, 3)
    view = show(plane, cid)
    zone = plane.settings.dns_zone
    assert view["endpoints"] == {"rw": f"pg-rw.{zone}", "ro": f"pg-ro.{zone}"}
    ip = {m["id"]: m["ip"][0] for m in view["instances"]}
    assert endpoint(plane, "rw") == [ip[primary["id"]]]
    assert endpoint(plane, "ro") == sorted([ip[r1["id"]], ip[r2["id"]]])

    plane.action(r1["id"], {"promote_to_replica_source": {}})
    plane.run()
    assert endpoint(plane, "rw") == [ip[r1["id"]]]
    assert endpoint(plane, "ro") == sorted([ip[primary["id"]], ip[r2["id"]]])

    r = plane.http.post(plane.url(f"/clusters/{cid}"), json={"grow": [member(name="pg-4")]})
    assert r.status_code == 202, r.text
    plane.run()
    new = next(m for m in show(plane, cid)["instances"] if m["name"] == "pg-4")
    assert ip[r2["id"]] in endpoint(plane, "ro") and new["ip"][0] in endpoint(plane, "ro")

    r = plane.http.post(plane.url(f"/clusters/{cid}"), json={"shrink": [{"id": r2["id"]}]})
    assert r.status_code == 202, r.text
    plane.run()
    assert endpoint(plane, "ro") == sorted([ip[primary["id"]], new["ip"][0]])

    # Failover: the fenced old primary answers on neither name.
    plane.services.compute.delete_server(plane.tm.store.get(r1["id"]).compute_instance_id or "")
    plane.action(r1["id"], {"eject_replica_source": {}})
    plane.run()
    rw = endpoint(plane, "rw")
    assert rw in ([ip[primary["id"]]], [new["ip"][0]])
    assert ip[r1["id"]] not in endpoint(plane, "ro") + rw
    assert len(endpoint(plane, "ro")) == 1

    assert plane.http.delete(plane.url(f"/clusters/{cid}")).status_code == 202
    plane.run()
    assert endpoint(plane, "rw") == endpoint(plane, "ro") == []


def test_a_cluster_name_must_make_endpoints_of_its_own(plane: ControlPlane) -> None:
    build(plane, 2)
    body = {"cluster": {"name": "PG", "instances": [member()]}}
    r = plane.http.post(plane.url("/clusters"), json=body)
    assert r.status_code == 409 and "cluster.name" in r.text and "pg-rw" in r.text.lower(), r.text
    for bad in ("pg_1", "-pg", "pg.x", "p" * 61):
        body = {"cluster": {"name": bad, "instances": [member()]}}
        r = plane.http.post(plane.url("/clusters"), json=body)
        assert r.status_code == 400 and "cluster.name" in r.text, (bad, r.text)
    assert plane.resources()["servers"] == 2


def test_a_switchover_to_a_replica_far_behind_is_refused_and_changes_nothing(
    plane: ControlPlane,
) -> None:
    cid, (primary, r1, _r2) = build(plane)
    set_wal(plane.cloud, primary["id"], 200 << 20)
    set_wal(plane.cloud, r1["id"], 100 << 20)  # 100 MB behind
    plane.action(r1["id"], {"promote_to_replica_source": {}})
    plane.run()
    view = show(plane, cid)
    assert view["task"]["name"] == "NONE", view
    assert "104857600 bytes behind" in view["fault"]["message"], view
    assert roles(plane, cid) == {"pg-1": "primary", "pg-2": "replica", "pg-3": "replica"}
    assert all(m["status"] == "ACTIVE" for m in view["instances"])
    # Nothing was stopped: the old primary never went down.
    assert plane.cloud.call_count("guest.stop_db") == 0

    set_wal(plane.cloud, r1["id"], None)  # caught up
    plane.action(r1["id"], {"promote_to_replica_source": {}})
    plane.run()
    assert roles(plane, cid)["pg-2"] == "primary"
    assert "fault" not in show(plane, cid)
