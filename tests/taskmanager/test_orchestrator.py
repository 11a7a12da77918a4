"""The orchestrator and migration managers on the fake cloud, through the API and the
task manager: every instance is a stack of the embedded engine."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from plane import ControlPlane, make_plane, running
from sqlalchemy import select
from taskflow import engines

from cellar.db.engine import make_session_factory, transaction
from cellar.db.models import Job
from cellar.domain.specs import RuleSpec, spec_from_dict
from cellar.orchestration.stacks import REBOOT, SignalNotSupported, StackService
from cellar.resource_managers.base import Operation
from cellar.resource_managers.migration import MigrationManager
from cellar.resource_managers.orchestrator import OrchestratorManager
from cellar.resource_managers.orchestrator_steps import CreateStack


def _one_of_each(plane: ControlPlane) -> None:
    assert plane.resources() == {
        "servers": 1,
        "volumes": 1,
        "security_groups": 1,
        "dns_records": 1,
    }


def test_orchestrated_instance_lives_in_its_stack(tmp_path: Path) -> None:
    with running(make_plane(tmp_path, resource_manager="orchestrator")) as plane:
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

        reboots = plane.cloud.call_count("compute.reboot_server")
        [server] = plane.services.compute.list_servers()
        plane.action(iid, {"reboot": {}})
        plane.run()
        assert plane.show(iid)["status"] == "ACTIVE"
        # The stack's server was really rebooted.
        assert plane.cloud.call_count("compute.reboot_server") == reboots + 1
        [rebooted] = plane.services.compute.list_servers()
        assert rebooted.extra["boots"] == server.extra["boots"] + 1

        plane.delete(iid)
        plane.run()
        assert plane.gone(iid)
        assert sum(plane.resources().values()) == 0
        assert plane.orphans() == []


class _HeatLikeSignals:
    """The embedded engine's stacks, refusing a reboot signal as Heat does (its servers
    take no signal at all); everything else goes to the engine."""

    def __init__(self, inner: StackService) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def signal(self, stack_id: str, resource_name: str, data: dict[str, Any]) -> None:
        if data.get("action") == REBOOT:
            raise SignalNotSupported("Heat's servers take no signal", stack_id=stack_id)
        self.inner.signal(stack_id, resource_name, data)


def test_a_stack_service_without_a_reboot_signal_reboots_through_compute(
    tmp_path: Path,
) -> None:
    with running(make_plane(tmp_path, resource_manager="orchestrator")) as plane:
        iid = plane.create()
        plane.run()
        assert plane.tm.ctx.stacks is not None
        ctx = dataclasses.replace(plane.tm.ctx, stacks=_HeatLikeSignals(plane.tm.ctx.stacks))
        before = plane.cloud.call_count("compute.reboot_server")
        engines.run(OrchestratorManager(ctx).reboot(iid))
        assert plane.cloud.call_count("compute.reboot_server") == before + 1
        [server] = plane.services.compute.list_servers()
        assert server.status.value == "ACTIVE"
        stack_id = plane.show(iid)["stack_id"]
        events = plane.tm.ctx.stacks.events(stack_id)
        assert not [e for e in events if e.action == "SIGNAL" and e.resource_name == "server"]


def test_a_failed_stack_leaves_error_and_nothing_behind(tmp_path: Path) -> None:
    with running(make_plane(tmp_path, resource_manager="orchestrator")) as plane:
        plane.cloud.inject_fault("compute.create_server")
        iid = plane.create()
        plane.run()
        inst = plane.show(iid)
        assert inst["status"] == "ERROR", inst
        # The stack rolled back; the fault names the failure that made it, not just
        # "ROLLBACK_COMPLETE".
        message = inst["fault"]["message"]
        assert "CREATE_FAILED" in message and "server" in message, message
        assert sum(plane.resources().values()) == 0
        plane.delete(iid)
        plane.run()
        assert plane.gone(iid) and plane.orphans() == []


def _stacks(plane: ControlPlane) -> StackService:
    stacks = plane.tm.ctx.stacks
    assert stacks is not None
    return stacks


def _stack_id(plane: ControlPlane, iid: str) -> str:
    return str(plane.show(iid)["stack_id"])


def _stack_status(plane: ControlPlane, iid: str) -> str:
    return _stacks(plane).get(_stack_id(plane, iid)).status


def _stack_resources(plane: ControlPlane, iid: str) -> dict[str, str | None]:
    return {r.name: r.physical_id for r in _stacks(plane).resources(_stack_id(plane, iid))}


def _api_group(plane: ControlPlane, iid: str) -> dict[str, Any]:
    groups = plane.http.get(plane.url("/security-groups")).json()["security_groups"]
    return dict(next(g for g in groups if g["instance_id"] == iid))


def _api_rules(plane: ControlPlane, iid: str) -> set[tuple[str, int]]:
    """The rules the API shows for the instance's group, as (CIDR, port)."""
    group_id = _api_group(plane, iid)["id"]
    group = plane.http.get(plane.url(f"/security-groups/{group_id}")).json()["security_group"]
    return {(r["cidr"], r["from_port"]) for r in group["rules"]}


def _cloud_rules(plane: ControlPlane, group_id: str) -> set[tuple[str, int]]:
    """The rules of the cloud's security group `group_id`, as (CIDR, port)."""
    group = plane.services.network.get_security_group(group_id)
    return {(r.cidr, r.from_port) for r in group.rules}


def _add_rule(plane: ControlPlane, iid: str, cidr: str) -> str:
    r = plane.http.post(
        plane.url("/security-group-rules"),
        json={"security_group_rule": {"group_id": _api_group(plane, iid)["id"], "cidr": cidr}},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["security_group_rule"]["id"])


def _succeeded(plane: ControlPlane, iid: str) -> list[str]:
    return [e["step"] for e in plane.events(iid) if e["outcome"] == "succeeded"]


def test_rule_changes_are_stack_updates_of_the_same_group(tmp_path: Path) -> None:
    with running(make_plane(tmp_path, resource_manager="orchestrator")) as plane:
        iid = plane.create(access={"allowed_cidrs": ["10.3.0.0/16"]})
        plane.run()
        assert plane.show(iid)["status"] == "ACTIVE"
        before = _stack_resources(plane, iid)
        group_id = before["security_group"]
        assert group_id and _cloud_rules(plane, group_id) == {("10.3.0.0/16", 5432)}
        # The provision gave the rule rows the cloud's ids, as the native manager does.
        (provisioned,) = _api_group(plane, iid)["rules"]
        (cloud_rule,) = plane.services.network.get_security_group(group_id).rules
        assert plane.tm.store.rule(provisioned["id"]).provider_id == cloud_rule.id

        def settled(expected: set[tuple[str, int]]) -> None:
            assert _stack_status(plane, iid) == "UPDATE_COMPLETE"
            # Reconciled in place: the same group, and nothing else of the stack moved.
            assert _stack_resources(plane, iid) == before
            assert _cloud_rules(plane, group_id) == expected
            assert _api_rules(plane, iid) == expected
            assert plane.show(iid)["status"] == "ACTIVE"
            assert plane.orphans() == []

        rule_id = _add_rule(plane, iid, "192.0.2.0/24")
        plane.run()
        settled({("10.3.0.0/16", 5432), ("192.0.2.0/24", 5432)})
        added = next(
            r for r in plane.services.network.get_security_group(group_id).rules
            if r.cidr == "192.0.2.0/24"
        )  # fmt: skip
        assert plane.tm.store.rule(rule_id).provider_id == added.id
        assert {"stack.template", "security_group_rule.create"} <= set(_succeeded(plane, iid))

        r = plane.http.put(
            plane.url(f"/security-group-rules/{rule_id}"),
            json={"security_group_rule": {"cidr": "198.51.100.0/24"}},
        )
        assert r.status_code == 202, r.text
        plane.run()
        settled({("10.3.0.0/16", 5432), ("198.51.100.0/24", 5432)})
        # The template says the same: the next change starts from it.
        template = _stacks(plane).template(_stack_id(plane, iid))
        rules = template["resources"]["security_group"]["properties"]["rules"]
        assert [r["remote_ip_prefix"] for r in rules] == ["10.3.0.0/16", "198.51.100.0/24"]

        assert plane.http.delete(plane.url(f"/security-group-rules/{rule_id}")).status_code == 204
        plane.run()
        settled({("10.3.0.0/16", 5432)})
        assert plane.tm.store.rule(rule_id).provider_id is None

        plane.delete(iid)
        plane.run()
        assert plane.gone(iid) and sum(plane.resources().values()) == 0
        assert plane.orphans() == []


def test_a_rule_update_failing_in_the_cloud_keeps_the_previous_rules(tmp_path: Path) -> None:
    with running(make_plane(tmp_path, resource_manager="orchestrator")) as plane:
        iid = plane.create(access={"allowed_cidrs": ["10.3.0.0/16"]})
        plane.run()
        group_id = _stack_resources(plane, iid)["security_group"]
        assert group_id
        template = _stacks(plane).template(_stack_id(plane, iid))

        plane.cloud.inject_fault("network.create_security_group_rule")
        rule_id = _add_rule(plane, iid, "192.0.2.0/24")
        plane.run()
        events = [(e["step"], e["outcome"]) for e in plane.events(iid)]
        assert ("security_group_rule.create", "failed") in events, events
        assert ("security_group_rule.create", "reverted") in events, events
        # Reverted: the previous template is the stack's again, and so are the rules.
        assert _stacks(plane).template(_stack_id(plane, iid)) == template
        assert _stack_status(plane, iid) in ("ROLLBACK_COMPLETE", "UPDATE_COMPLETE")
        assert _stack_resources(plane, iid)["security_group"] == group_id
        assert _cloud_rules(plane, group_id) == {("10.3.0.0/16", 5432)}
        assert plane.tm.store.rule(rule_id).provider_id is None
        # As under the native manager, the row of the failed rule stays, without a cloud
        # rule (the job's failure is in the instance's events).
        assert _api_rules(plane, iid) == {("10.3.0.0/16", 5432), ("192.0.2.0/24", 5432)}
        assert plane.show(iid)["status"] == "ACTIVE"

        # Still usable: the next change goes through, in the same group.
        other = _add_rule(plane, iid, "203.0.113.0/24")
        plane.run()
        assert _stack_status(plane, iid) == "UPDATE_COMPLETE"
        assert _stack_resources(plane, iid)["security_group"] == group_id
        assert _cloud_rules(plane, group_id) == {("10.3.0.0/16", 5432), ("203.0.113.0/24", 5432)}
        assert plane.tm.store.rule(other).provider_id
        plane.action(iid, {"reboot": {}})
        plane.run()
        assert plane.show(iid)["status"] == "ACTIVE"
        assert plane.orphans() == []


def test_dns_record_is_removed_and_added_by_stack_updates(tmp_path: Path) -> None:
    with running(make_plane(tmp_path, resource_manager="orchestrator")) as plane:
        iid = plane.create()
        plane.run()
        manager = OrchestratorManager(plane.tm.ctx)
        (record,) = plane.services.dns.list_records()
        hostname = plane.show(iid)["hostname"]
        assert record.name == hostname and plane.tm.store.get(iid).dns_record_id == record.id
        server = _stack_resources(plane, iid)["server"]

        engines.run(manager.delete_dns_record(iid))
        assert plane.services.dns.list_records() == []
        assert _stack_status(plane, iid) == "UPDATE_COMPLETE"
        assert "dns_record" not in _stack_resources(plane, iid)
        assert plane.tm.store.get(iid).dns_record_id is None
        assert plane.show(iid)["hostname"] == hostname

        engines.run(manager.create_dns_record(iid))
        (record,) = plane.services.dns.list_records()
        address = plane.services.compute.get_server(server).addresses[0]
        assert (record.name, record.data) == (hostname, address)
        assert _stack_status(plane, iid) == "UPDATE_COMPLETE"
        assert _stack_resources(plane, iid)["dns_record"] == record.id
        assert _stack_resources(plane, iid)["server"] == server
        assert plane.tm.store.get(iid).dns_record_id == record.id
        stack = _stacks(plane).get(_stack_id(plane, iid))
        assert stack.outputs["dns_record_id"] == record.id

        # Asked again, nothing changes.
        engines.run(manager.create_dns_record(iid))
        assert plane.services.dns.list_records() == [record]

        plane.delete(iid)
        plane.run()
        assert plane.gone(iid) and sum(plane.resources().values()) == 0
        assert plane.orphans() == []


def test_create_security_group_adds_its_rules_to_the_stack_group(tmp_path: Path) -> None:
    with running(make_plane(tmp_path, resource_manager="orchestrator")) as plane:
        iid = plane.create(access={"allowed_cidrs": ["10.3.0.0/16"]})
        plane.run()
        group_id = _stack_resources(plane, iid)["security_group"]
        assert group_id
        manager = OrchestratorManager(plane.tm.ctx)
        wanted = (
            RuleSpec("tcp", 5432, 5432, "10.3.0.0/16"),
            RuleSpec("tcp", 22, 22, "10.9.0.0/16"),
        )
        engines.run(manager.create_security_group(iid, wanted))
        assert _stack_status(plane, iid) == "UPDATE_COMPLETE"
        assert _stack_resources(plane, iid)["security_group"] == group_id
        assert _cloud_rules(plane, group_id) == {("10.3.0.0/16", 5432), ("10.9.0.0/16", 22)}
        # Deleting the group would replace the database server: not offered.
        assert not OrchestratorManager.supports(Operation.DELETE_SECURITY_GROUP)


def test_rule_changes_follow_each_instance_engine_under_migration(tmp_path: Path) -> None:
    native = make_plane(tmp_path, resource_manager="native")
    old = native.create("old")
    with running(native):
        native.run()

    with running(make_plane(tmp_path, resource_manager="migration")) as plane:
        new = plane.create("new")
        plane.run()
        for op in (
            Operation.ADD_SECURITY_GROUP_RULE,
            Operation.UPDATE_SECURITY_GROUP_RULE_CIDR,
            Operation.DELETE_SECURITY_GROUP_RULE,
            Operation.CREATE_DNS_RECORD,
            Operation.DELETE_DNS_RECORD,
        ):
            assert MigrationManager.supports(op, "native")
            assert MigrationManager.supports(op, "orchestrator")
        # What neither engine does stays refused for both.
        for engine_name in ("native", "orchestrator"):
            assert not MigrationManager.supports(Operation.DELETE_SECURITY_GROUP, engine_name)
        new_group = _stack_resources(plane, new)["security_group"]
        assert new_group
        new_template = _stacks(plane).template(_stack_id(plane, new))

        _add_rule(plane, old, "192.0.2.0/24")
        _add_rule(plane, new, "192.0.2.0/24")
        plane.run()
        expected = {("0.0.0.0/0", 5432), ("192.0.2.0/24", 5432)}
        for iid in (old, new):
            group_id = plane.tm.store.get(iid).security_group_id
            assert group_id and _cloud_rules(plane, group_id) == expected
            assert _api_rules(plane, iid) == expected
        # The new instance's rule went through its stack; the old one's did not.
        assert "stack.template" in _succeeded(plane, new)
        assert "stack.template" not in _succeeded(plane, old)
        assert _stack_status(plane, new) == "UPDATE_COMPLETE"
        assert _stack_resources(plane, new)["security_group"] == new_group
        assert _stacks(plane).template(_stack_id(plane, new)) != new_template

        plane.delete(old)
        plane.delete(new)
        plane.run()
        assert sum(plane.resources().values()) == 0 and plane.orphans() == []


def test_switching_native_to_migration_keeps_old_instances_native(tmp_path: Path) -> None:
    native = make_plane(tmp_path, resource_manager="native")
    old = native.create("old")
    with running(native):
        native.run()
        assert native.show(old)["provisioning_engine"] == "native"

    with running(make_plane(tmp_path, resource_manager="migration")) as plane:
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


def test_operators_see_the_stack_with_cellar_stack(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from cellar.cli import main

    with running(make_plane(tmp_path, resource_manager="orchestrator")) as plane:
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


def test_a_stack_made_by_a_task_manager_that_died_before_recording_it_is_found(
    tmp_path: Path,
) -> None:
    """The window between the engine saving a new stack and the instance recording its
    id: the create step, run again, finds the stack by name instead of making a second."""
    with running(make_plane(tmp_path, resource_manager="orchestrator")) as plane:
        iid = plane.create()
        plane.run()
        stack_id = plane.show(iid)["stack_id"]
        with transaction(make_session_factory(plane.engine), readonly=True) as session:
            job = session.scalars(
                select(Job).where(Job.instance_id == iid, Job.kind == "provision_instance")
            ).one()
            spec = spec_from_dict(job.args["spec"])
        plane.tm.store.record_resources(iid, stack_id=None)  # as if never recorded

        engines.run(CreateStack(plane.tm.ctx, spec, name="stack.create"))

        assert plane.tm.store.get(iid).stack_id == stack_id
        found = _stacks(plane).find(spec.resource_name)
        assert found is not None and found.id == stack_id
        _one_of_each(plane)
