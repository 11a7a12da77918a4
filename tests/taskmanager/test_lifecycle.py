"""An instance's whole life through the API, the task manager and the fake cloud."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from plane import ControlPlane, make_plane


def test_create_resize_grow_reboot_restart_delete(plane: ControlPlane) -> None:
    iid = plane.create(access={"allowed_cidrs": ["10.1.0.0/16"]})
    assert plane.show(iid)["status"] == "BUILD"
    plane.run()

    inst = plane.show(iid)
    assert inst["status"] == "ACTIVE", inst
    assert inst["ip"] and inst["hostname"] == f"cellar-{iid}.cellar.internal"
    assert plane.resources() == {
        "servers": 1,
        "volumes": 1,
        "security_groups": 1,
        "dns_records": 1,
    }
    group = plane.services.network.list_security_groups()[0]
    assert [(r.protocol, r.from_port, r.cidr) for r in group.rules] == [
        ("tcp", 5432, "10.1.0.0/16")
    ]
    record = plane.services.dns.list_records()[0]
    assert (record.name, record.data) == (inst["hostname"], inst["ip"][0])
    steps = [(e["step"], e["outcome"]) for e in plane.events(iid)]
    for step in ("security_group.create", "volume.create", "server.create", "guest.wait"):
        assert (step, "succeeded") in steps
    assert steps[-1] == ("provision_instance", "succeeded")

    plane.action(iid, {"resize": {"flavorRef": "2"}})
    assert plane.show(iid)["status"] == "RESIZE"
    plane.run()
    inst = plane.show(iid)
    assert (inst["status"], inst["flavor"]["id"]) == ("ACTIVE", "2")
    assert plane.services.compute.list_servers()[0].flavor_id == "2"

    plane.action(iid, {"resize": {"volume": {"size": 3}}})
    plane.run()
    inst = plane.show(iid)
    assert (inst["status"], inst["volume"]["size"]) == ("ACTIVE", 3)
    assert plane.services.volume.list_volumes()[0].size_gb == 3

    def boots() -> int:
        [server] = plane.services.compute.list_servers()
        return int(server.extra["boots"])

    # A reboot reboots the server (the compute driver was asked, and it booted once
    # more); a restart restarts the datastore through the guest, and boots nothing.
    for action, called, booted in (
        ({"reboot": {}}, "compute.reboot_server", 1),
        ({"restart": {}}, "guest.restart", 0),
    ):
        calls, boots_before = plane.cloud.call_count(called), boots()
        plane.action(iid, action)
        assert plane.show(iid)["status"] == "REBOOT"
        plane.run()
        assert plane.show(iid)["status"] == "ACTIVE"
        assert plane.cloud.call_count(called) == calls + 1, action
        assert boots() == boots_before + booted, action

    plane.delete(iid)
    plane.run()
    assert plane.gone(iid)
    assert plane.resources() == {
        "servers": 0,
        "volumes": 0,
        "security_groups": 0,
        "dns_records": 0,
    }
    assert plane.orphans() == []


def test_delete_while_building_stops_the_create_and_leaves_nothing(plane: ControlPlane) -> None:
    iid = plane.create()
    plane.delete(iid)
    plane.run()
    assert plane.gone(iid)
    assert sum(plane.resources().values()) == 0
    assert plane.orphans() == []


def test_security_group_rule_add_change_and_delete(plane: ControlPlane) -> None:
    iid = plane.create()
    plane.run()
    groups = plane.http.get(plane.url("/security-groups")).json()["security_groups"]
    group = next(g for g in groups if g.get("instance_id") in (iid, None) or iid in g["name"])
    r = plane.http.post(
        plane.url("/security-group-rules"),
        json={"security_group_rule": {"group_id": group["id"], "cidr": "192.0.2.0/24"}},
    )
    assert r.status_code == 201, r.text
    rule_id = r.json()["security_group_rule"]["id"]
    plane.run()
    cloud_rules = plane.services.network.list_security_groups()[0].rules
    assert ("192.0.2.0/24", 5432) in [(x.cidr, x.from_port) for x in cloud_rules]

    r = plane.http.put(
        plane.url(f"/security-group-rules/{rule_id}"),
        json={"security_group_rule": {"cidr": "198.51.100.0/24"}},
    )
    assert r.status_code == 202, r.text
    plane.run()
    cidrs = {x.cidr for x in plane.services.network.list_security_groups()[0].rules}
    assert "198.51.100.0/24" in cidrs and "192.0.2.0/24" not in cidrs

    assert plane.http.delete(plane.url(f"/security-group-rules/{rule_id}")).status_code == 204
    plane.run()
    cidrs = {x.cidr for x in plane.services.network.list_security_groups()[0].rules}
    assert cidrs == {"0.0.0.0/0"}


def test_delete_during_a_running_resize_wins(tmp_path: Path) -> None:
    plane = make_plane(tmp_path, fake_latency_s=0.05)
    plane.tm.start()
    try:
        iid = plane.create()
        wait_until(lambda: plane.show(iid)["status"] == "ACTIVE")
        plane.action(iid, {"resize": {"flavorRef": "2"}})
        wait_until(lambda: plane.cloud.call_count("compute.resize_server") >= 1)
        plane.delete(iid)
        wait_until(lambda: plane.gone(iid))
        assert sum(plane.resources().values()) == 0
        assert plane.orphans() == []
    finally:
        plane.tm.stop()
        plane.engine.dispose()


def wait_until(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_enable_root_returns_a_new_password_each_time_and_only_when_ready(
    plane: ControlPlane,
) -> None:
    iid = plane.create()
    assert plane.http.post(plane.url(f"/instances/{iid}/root")).status_code == 422
    plane.run()
    first = plane.http.post(plane.url(f"/instances/{iid}/root"))
    second = plane.http.post(plane.url(f"/instances/{iid}/root"))
    assert first.status_code == second.status_code == 200, first.text
    assert first.json()["user"]["name"] and first.json()["user"]["password"]
    assert first.json()["user"]["password"] != second.json()["user"]["password"]
    # Nothing of it is kept: no event, no fault, no column carries the password.
    password = first.json()["user"]["password"]
    assert password not in str(plane.events(iid)) and password not in str(plane.show(iid))
    assert plane.http.post(plane.url("/instances/nope/root")).status_code == 404
