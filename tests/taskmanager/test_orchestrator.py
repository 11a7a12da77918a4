"""The orchestrator and migration managers on the fake cloud, through the API and the
task manager: every instance is a stack of the embedded engine."""

from __future__ import annotations

from pathlib import Path

from plane import ControlPlane, make_plane


def _one_of_each(plane: ControlPlane) -> None:
    assert plane.resources() == {
        "servers": 1,
        "volumes": 1,
        "security_groups": 1,
        "dns_records": 1,
    }


def test_orchestrated_instance_lives_in_its_stack(tmp_path: Path) -> None:
    plane = make_plane(tmp_path, resource_manager="orchestrator")
    try:
        iid = plane.create(access={"allowed_cidrs": ["10.3.0.0/16"]})
        plane.run()
        inst = plane.show(iid)
        assert inst["status"] == "ACTIVE", (inst.get("fault"), plane.events(iid))
        assert inst["provisioning_engine"] == "orchestrator" and inst["stack_id"]
        _one_of_each(plane)
        server = plane.services.compute.list_servers()[0]
        assert inst["ip"] == list(server.addresses)
        steps = [e["step"] for e in plane.events(iid) if e["outcome"] == "succeeded"]
        assert {"stack.create", "stack.server", "guest.prepare", "stack.ready"} <= set(steps)

        plane.action(iid, {"resize": {"flavorRef": "2"}})
        plane.run()
        inst = plane.show(iid)
        assert (inst["status"], inst["flavor"]["id"]) == ("ACTIVE", "2"), inst
        # Updated in place: the same server, now with the new flavor.
        assert plane.services.compute.list_servers()[0].id == server.id
        assert plane.services.compute.list_servers()[0].flavor_id == "2"

        plane.action(iid, {"resize": {"volume": {"size": 2}}})
        plane.run()
        assert plane.show(iid)["volume"]["size"] == 2
        assert plane.services.volume.list_volumes()[0].size_gb == 2

        plane.action(iid, {"reboot": {}})
        plane.run()
        assert plane.show(iid)["status"] == "ACTIVE"

        plane.delete(iid)
        plane.run()
        assert plane.gone(iid)
        assert sum(plane.resources().values()) == 0
        assert plane.orphans() == []
    finally:
        plane.tm.pool.shutdown(wait=True)
        plane.engine.dispose()


def test_a_failed_stack_leaves_error_and_nothing_behind(tmp_path: Path) -> None:
    plane = make_plane(tmp_path, resource_manager="orchestrator")
    try:
        plane.cloud.inject_fault("compute.create_server")
        iid = plane.create()
        plane.run()
        inst = plane.show(iid)
        assert inst["status"] == "ERROR" and inst["fault"]["message"], inst
        assert sum(plane.resources().values()) == 0
        plane.delete(iid)
        plane.run()
        assert plane.gone(iid) and plane.orphans() == []
    finally:
        plane.tm.pool.shutdown(wait=True)
        plane.engine.dispose()


def test_security_group_rules_are_not_supported_by_the_orchestrator_yet(tmp_path: Path) -> None:
    plane = make_plane(tmp_path, resource_manager="orchestrator")
    try:
        iid = plane.create()
        plane.run()
        group = next(
            g
            for g in plane.http.get(plane.url("/security-groups")).json()["security_groups"]
            if iid in g["name"]
        )
        r = plane.http.post(
            plane.url("/security-group-rules"),
            json={"security_group_rule": {"group_id": group["id"], "cidr": "192.0.2.0/24"}},
        )
        assert r.status_code == 501 and "add_security_group_rule" in r.text
    finally:
        plane.tm.pool.shutdown(wait=True)
        plane.engine.dispose()


def test_switching_native_to_migration_keeps_old_instances_native(tmp_path: Path) -> None:
    native = make_plane(tmp_path, resource_manager="native")
    old = native.create("old")
    native.run()
    assert native.show(old)["provisioning_engine"] == "native"
    native.tm.pool.shutdown(wait=True)
    native.engine.dispose()

    plane = make_plane(tmp_path, resource_manager="migration")
    try:
        new = plane.create("new")
        plane.run()
        assert plane.show(new)["provisioning_engine"] == "orchestrator"
        assert plane.show(new)["stack_id"] and not plane.show(old)["stack_id"]
        listed = {i["id"] for i in plane.http.get(plane.url("/instances")).json()["instances"]}
        assert {old, new} <= listed

        plane.action(old, {"resize": {"flavorRef": "2"}})
        plane.run()
        old_steps = [e["step"] for e in plane.events(old)]
        assert "server.resize" in old_steps and "stack.update" not in old_steps
        plane.action(new, {"resize": {"flavorRef": "2"}})
        plane.run()
        assert "stack.update" in [e["step"] for e in plane.events(new)]

        plane.delete(old)
        plane.delete(new)
        plane.run()
        assert plane.gone(old) and plane.gone(new)
        assert sum(plane.resources().values()) == 0 and plane.orphans() == []
    finally:
        plane.tm.pool.shutdown(wait=True)
        plane.engine.dispose()


def test_operators_see_the_stack_with_cellar_stack(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from cellar.cli import main

    plane = make_plane(tmp_path, resource_manager="orchestrator")
    try:
        iid = plane.create()
        plane.run()
        stack_id = plane.show(iid)["stack_id"]
        runner = CliRunner()
        env = {"CELLAR_STATE_DIR": str(tmp_path), "COLUMNS": "250"}

        def run(*args: str) -> str:
            result = runner.invoke(main, ["stack", *args], env=env, catch_exceptions=False)
            assert result.exit_code == 0, result.output
            return result.output

        listed = run("list")
        assert stack_id in listed and f"cellar-{iid}" in listed and "CREATE_COMPLETE" in listed
        shown = run("show", stack_id)
        server = plane.services.compute.list_servers()[0]
        for name in ("server", "volume", "security_group", "dns_record", "ready"):
            assert name in shown
        assert server.id in shown
        events = run("events", stack_id)
        assert "CREATE_IN_PROGRESS" in events and "CREATE_COMPLETE" in events
        template = json.loads(run("template", stack_id))
        assert template["heat_template_version"] == "2018-08-31"
        assert runner.invoke(main, ["stack", "show", "nope"], env=env).exit_code == 1
    finally:
        plane.tm.pool.shutdown(wait=True)
        plane.engine.dispose()
