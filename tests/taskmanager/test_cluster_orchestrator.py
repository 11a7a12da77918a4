"""Clusters under the orchestrator (one stack per cluster) and the migration manager,
through the API, the task manager and the embedded engine on the fake cloud: a member's
grow, shrink and resize leave the other members' resources alone, ids and events."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from plane import ControlPlane, make_plane, running
from sqlalchemy import select
from taskflow import engines
from test_clusters import act, create_cluster, member, show
from test_crash import Processes, wait_until

from cellar.db.engine import make_session_factory, transaction
from cellar.db.models import Cluster, Instance, Job
from cellar.domain.errors import OperationIsNotSupported
from cellar.domain.replication import slot_name
from cellar.domain.specs import RuleSpec, spec_from_dict
from cellar.orchestration.local.service import LocalStackService
from cellar.orchestration.stacks import ENGINE_WENT_DOWN, StackService
from cellar.orchestration.templates.cluster import prefix_of
from cellar.resource_managers.base import Operation
from cellar.resource_managers.migration import MigrationManager
from cellar.resource_managers.orchestrator import OrchestratorManager
from cellar.resource_managers.orchestrator_cluster import CreateClusterStack, cluster_stack_name


def stacks(plane: ControlPlane) -> StackService:
    assert plane.tm.ctx.stacks is not None
    return plane.tm.ctx.stacks


def rows(plane: ControlPlane, cid: str) -> tuple[Cluster, list[Instance]]:
    with transaction(make_session_factory(plane.engine)) as s:
        cluster = s.get(Cluster, cid)
        assert cluster is not None
        members = list(s.scalars(select(Instance).where(Instance.cluster_id == cid)))
        s.expunge_all()
    return cluster, members


def physical_ids(plane: ControlPlane, stack_id: str, iid: str) -> dict[str, str | None]:
    """The member's resources in the stack, by logical name without its prefix."""
    at = prefix_of(iid)
    return {
        r.name[len(at) :]: r.physical_id
        for r in stacks(plane).resources(stack_id)
        if r.name.startswith(at)
    }


def events_on(plane: ControlPlane, stack_id: str, iids: list[str], since: int) -> list[Any]:
    """The stack's events after the first `since` on those members' resources."""
    prefixes = tuple(prefix_of(i) for i in iids)
    events = stacks(plane).events(stack_id)[since:]
    return [e for e in events if e.resource_name.startswith(prefixes)]


def test_an_orchestrated_cluster_is_one_stack_grown_shrunk_resized_and_deleted(
    tmp_path: Path,
) -> None:
    with running(make_plane(tmp_path, resource_manager="orchestrator")) as plane:
        cid = create_cluster(
            plane,
            [member("2", 2), member("1", 1), member("1", 3)],
            access={"allowed_cidrs": ["10.9.0.0/16"]},
        )
        plane.run()
        view = show(plane, cid)
        assert view["task"]["name"] == "NONE", view
        members = view["instances"]
        assert [m["status"] for m in members] == ["ACTIVE"] * 3
        assert [(m["flavor"]["id"], m["volume"]["size"]) for m in members] == [
            ("2", 2),
            ("1", 1),
            ("1", 3),
        ]
        # One stack, named for the cluster, on the cluster's row and every member's.
        cluster, instances = rows(plane, cid)
        found = stacks(plane).find(cluster_stack_name(cid))
        assert found is not None and found.status == "CREATE_COMPLETE"
        stack_id = found.id
        assert cluster.stack_id == stack_id
        assert {i.stack_id for i in instances} == {stack_id}
        made = plane.resources()
        assert (made["servers"], made["volumes"], made["security_groups"]) == (3, 3, 3)
        ids = [m["id"] for m in members]
        primary, r1, r2 = ids
        by_id = {i.id: i for i in instances}
        for iid in ids:
            made = physical_ids(plane, stack_id, iid)
            row = by_id[iid]
            assert (row.compute_instance_id, row.volume_id, row.security_group_id) == (
                made["server"],
                made["volume"],
                made["security_group"],
            )
            assert row.dns_record_id == made["dns_record"] and row.dns_record_id
        servers = {s.id: s for s in plane.services.compute.list_servers()}
        assert sorted(s.flavor_id for s in servers.values()) == ["1", "1", "2"]
        assert plane.show(r1)["replica_of"]["id"] == primary
        # Peer access, as under the native manager.
        groups = {g.name: g for g in plane.services.network.list_security_groups()}
        for m in members:
            cidrs = {r.cidr for r in groups[f"cellar-{m['id']}"].rules}
            others = {f"{o['ip'][0]}/32" for o in members if o["id"] != m["id"]}
            assert cidrs == {"10.9.0.0/16"} | others
        assert [m["replication_lag_bytes"] for m in show(plane, cid)["instances"]] == [None, 0, 0]

        def untouched(
            iids: list[str], before: dict[str, dict[str, str | None]], since: int
        ) -> None:
            for iid in iids:
                assert physical_ids(plane, stack_id, iid) == before[iid], iid
            assert events_on(plane, stack_id, iids, since) == []

        # Grow by one: the others keep their resources, and the engine did nothing to them.
        before = {iid: physical_ids(plane, stack_id, iid) for iid in ids}
        since = len(stacks(plane).events(stack_id))
        act(plane, cid, {"grow": [member("3", 4, name="big")]})
        plane.run()
        view = show(plane, cid)
        assert view["task"]["name"] == "NONE", view
        big = view["instances"][3]
        assert (big["name"], big["status"], big["flavor"]["id"]) == ("big", "ACTIVE", "3")
        untouched(ids, before, since)
        assert events_on(plane, stack_id, [big["id"]], since)  # the grow's own events
        big_row = {i.id: i for i in rows(plane, cid)[1]}[big["id"]]
        assert big_row.stack_id == stack_id
        assert big_row.compute_instance_id == physical_ids(plane, stack_id, big["id"])["server"]
        status = plane.services.guest.replication_status(primary)
        assert {r.slot for r in status.replicas} == {slot_name(i) for i in (r1, r2, big["id"])}

        # Shrink one replica: its resources go, the others' stay as they were.
        ids.append(big["id"])
        before = {iid: physical_ids(plane, stack_id, iid) for iid in ids}
        since = len(stacks(plane).events(stack_id))
        act(plane, cid, {"shrink": [{"id": r1}]})
        plane.run()
        view = show(plane, cid)
        assert view["task"]["name"] == "NONE", view
        assert plane.gone(r1)
        assert physical_ids(plane, stack_id, r1) == {}
        kept = [primary, r2, big["id"]]
        untouched(kept, before, since)
        status = plane.services.guest.replication_status(primary)
        assert slot_name(r1) not in {r.slot for r in status.replicas}
        gone_cidr = f"{members[1]['ip'][0]}/32"
        for g in plane.services.network.list_security_groups():
            assert gone_cidr not in {r.cidr for r in g.rules}
        assert plane.resources()["servers"] == 3 and plane.orphans() == []

        # Resize one member's flavor, then its volume: a parameter update of its own.
        before = {iid: physical_ids(plane, stack_id, iid) for iid in kept}
        since = len(stacks(plane).events(stack_id))
        plane.action(r2, {"resize": {"flavorRef": "3"}})
        plane.run()
        plane.action(r2, {"resize": {"volume": {"size": 5}}})
        plane.run()
        inst = plane.show(r2)
        assert (inst["status"], inst["flavor"]["id"], inst["volume"]["size"]) == ("ACTIVE", "3", 5)
        server = plane.services.compute.get_server(before[r2]["server"] or "")
        assert server.flavor_id == "3"
        assert plane.services.volume.get_volume(before[r2]["volume"] or "").size_gb == 5
        assert physical_ids(plane, stack_id, r2) == before[r2]
        assert events_on(plane, stack_id, [r2], since)  # updated in place
        untouched([primary, big["id"]], before, since)

        # Delete: the stack goes, and nothing is left.
        r = plane.http.delete(plane.url(f"/clusters/{cid}"))
        assert r.status_code == 202, r.text
        plane.run()
        assert plane.http.get(plane.url(f"/clusters/{cid}")).status_code == 404
        assert stacks(plane).find(cluster_stack_name(cid)) is None
        assert sum(plane.resources().values()) == 0
        assert plane.orphans() == []
        assert rows(plane, cid)[0].stack_id is None


def test_a_member_that_fails_to_build_leaves_the_cluster_in_error_and_nothing_behind(
    tmp_path: Path,
) -> None:
    with running(make_plane(tmp_path, resource_manager="orchestrator")) as plane:
        cid = create_cluster(plane, [member(), member()])
        # The second server create fails for good: the replica's. The stack rolls back.
        plane.cloud.inject_fault("compute.create_server", nth=2)
        plane.run()
        view = show(plane, cid)
        assert view["task"]["name"] == "ERROR", view
        assert "server" in view["fault"]["message"], view["fault"]
        assert {m["status"] for m in view["instances"]} == {"ERROR"}
        assert stacks(plane).find(cluster_stack_name(cid)) is None
        assert sum(plane.resources().values()) == 0 and plane.orphans() == []
        cluster, instances = rows(plane, cid)
        assert cluster.stack_id is None and {i.stack_id for i in instances} == {None}

        r = plane.http.delete(plane.url(f"/clusters/{cid}"))
        assert r.status_code == 202
        plane.run()
        assert plane.http.get(plane.url(f"/clusters/{cid}")).status_code == 404
        assert plane.http.get(plane.url("/instances")).json()["instances"] == []


def test_a_failed_grow_takes_the_new_member_out_of_the_stack_and_keeps_the_others(
    tmp_path: Path,
) -> None:
    with running(make_plane(tmp_path, resource_manager="orchestrator")) as plane:
        cid = create_cluster(plane, [member(), member()])
        plane.run()
        ids = [m["id"] for m in show(plane, cid)["instances"]]
        stack_id = rows(plane, cid)[0].stack_id or ""
        before = {iid: physical_ids(plane, stack_id, iid) for iid in ids}
        template = stacks(plane).template(stack_id)
        plane.cloud.inject_fault("compute.create_server")
        act(plane, cid, {"grow": [member()]})
        plane.run()
        view = show(plane, cid)
        assert view["task"]["name"] == "ERROR", view
        assert [m["status"] for m in view["instances"]] == ["ACTIVE", "ACTIVE", "ERROR"]
        assert {iid: physical_ids(plane, stack_id, iid) for iid in ids} == before
        assert stacks(plane).template(stack_id) == template
        assert plane.resources()["servers"] == 2 and plane.orphans() == []


def test_a_cluster_stack_made_before_a_restart_is_found_not_made_twice(tmp_path: Path) -> None:
    """The window between the engine saving the cluster's stack and the rows recording
    its id: the create step, run again, finds the stack by name."""
    with running(make_plane(tmp_path, resource_manager="orchestrator")) as plane:
        cid = create_cluster(plane, [member(), member()])
        plane.run()
        cluster, instances = rows(plane, cid)
        with transaction(make_session_factory(plane.engine), readonly=True) as session:
            job = session.scalars(
                select(Job).where(Job.instance_id == cid, Job.kind == "provision_cluster")
            ).one()
            specs = tuple(spec_from_dict(d) for d in job.args["members"])
        for i in instances:
            plane.tm.store.record_resources(i.id, stack_id=None)  # as if never recorded
        plane.tm.store.record_cluster_stack(cid, None)

        engines.run(CreateClusterStack(plane.tm.ctx, cid, specs, name="stack.create"))

        cluster_after, instances_after = rows(plane, cid)
        assert cluster_after.stack_id == cluster.stack_id
        assert {i.stack_id for i in instances_after} == {cluster.stack_id}
        assert plane.resources()["servers"] == 2


def test_member_rule_and_dns_changes_are_refused_naming_the_operation(tmp_path: Path) -> None:
    with running(make_plane(tmp_path, resource_manager="orchestrator")) as plane:
        cid = create_cluster(plane, [member(), member()])
        plane.run()
        primary, replica = (m["id"] for m in show(plane, cid)["instances"])
        manager = OrchestratorManager(plane.tm.ctx)
        rule = RuleSpec("tcp", 5432, 5432, "192.0.2.0/24")
        for build, name in [
            (
                lambda: manager.add_security_group_rule(replica, "r", rule),
                "add_security_group_rule",
            ),
            (
                lambda: manager.delete_security_group_rule(replica, "r"),
                "delete_security_group_rule",
            ),
            (lambda: manager.create_dns_record(replica), "create_dns_record"),
            (lambda: manager.delete_dns_record(replica), "delete_dns_record"),
            (lambda: manager.delete_instance(primary), "delete_instance of a cluster's primary"),
        ]:
            with pytest.raises(OperationIsNotSupported) as refused:
                build()
            assert name in str(refused.value)


def test_under_migration_a_cluster_follows_its_own_engine(tmp_path: Path) -> None:
    native = make_plane(tmp_path, resource_manager="native")
    old = create_cluster(native, [member(), member()])
    with running(native):
        native.run()
        assert show(native, old)["task"]["name"] == "NONE"

    with running(make_plane(tmp_path, resource_manager="migration")) as plane:
        for op in (Operation.PROVISION_CLUSTER, Operation.GROW_CLUSTER, Operation.DELETE_CLUSTER):
            assert MigrationManager.supports(op, "orchestrator")
            assert MigrationManager.supports(op, "native")
        new = create_cluster(plane, [member(), member()], name="pg-new")
        plane.run()
        assert show(plane, new)["task"]["name"] == "NONE"
        new_cluster, new_members = rows(plane, new)
        assert new_cluster.provisioning_engine == "orchestrator" and new_cluster.stack_id
        assert {m.provisioning_engine for m in new_members} == {"orchestrator"}

        # The native cluster grows and shrinks natively: no stack anywhere.
        act(plane, old, {"grow": [member()]})
        plane.run()
        view = show(plane, old)
        assert view["task"]["name"] == "NONE" and len(view["instances"]) == 3
        act(plane, old, {"shrink": [{"id": view["instances"][1]["id"]}]})
        plane.run()
        old_cluster, old_members = rows(plane, old)
        assert old_cluster.provisioning_engine == "native" and old_cluster.stack_id is None
        assert {m.provisioning_engine for m in old_members} == {"native"}
        assert {m.stack_id for m in old_members} == {None}
        assert stacks(plane).find(cluster_stack_name(old)) is None
        assert plane.resources()["servers"] == 4

        for cid in (old, new):
            assert plane.http.delete(plane.url(f"/clusters/{cid}")).status_code == 202
        plane.run()
        assert stacks(plane).find(cluster_stack_name(new)) is None
        assert sum(plane.resources().values()) == 0 and plane.orphans() == []


@pytest.mark.slow
def test_sigkill_mid_cluster_create_then_restart_makes_no_second_stack(tmp_path: Path) -> None:
    # Slow enough that the kill lands in the middle of the create.
    plane = make_plane(
        tmp_path,
        fake_latency_s=0.15,
        job_lease_s=2.0,
        workers=2,
        resource_manager="orchestrator",
    )
    procs = Processes(plane.settings)
    try:
        first = procs.taskmanager("tm-a")
        cid = create_cluster(plane, [member("2", 2), member()])
        wait_until(
            "the primary's server", lambda: plane.cloud.call_count("compute.create_server") >= 1
        )
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        assert show(plane, cid)["task"]["name"] == "BUILDING"

        procs.taskmanager("tm-a")  # the same name: takes its jobs back at once
        wait_until("the cluster", lambda: show(plane, cid)["task"]["name"] in ("NONE", "ERROR"))
        view = show(plane, cid)
        assert view["task"]["name"] == "NONE", view
        assert [m["status"] for m in view["instances"]] == ["ACTIVE", "ACTIVE"]
        service = stacks(plane)
        assert isinstance(service, LocalStackService)
        named = service.engine.store.find_stacks(cluster_stack_name(cid))
        assert len(named) == 1
        # The dead engine's create was failed by the task manager that took the job
        # back, then retried by an update that kept what it had made.
        reasons = [e.reason for e in service.events(named[0].id)]
        assert any(r.startswith(ENGINE_WENT_DOWN) for r in reasons), reasons
        assert plane.cloud.call_count("compute.create_server") == 2
        made = plane.resources()
        assert (made["servers"], made["volumes"], made["security_groups"]) == (2, 2, 2)

        assert plane.http.delete(plane.url(f"/clusters/{cid}")).status_code == 202
        wait_until(
            "deleted", lambda: plane.http.get(plane.url(f"/clusters/{cid}")).status_code == 404
        )
        assert sum(plane.resources().values()) == 0 and plane.orphans() == []
    finally:
        procs.stop_all()
        plane.engine.dispose()


def test_a_member_rule_change_is_refused_at_the_api_and_writes_nothing(tmp_path: Path) -> None:
    with running(make_plane(tmp_path, resource_manager="orchestrator")) as plane:
        cid = create_cluster(plane, [member(), member()])
        plane.run()
        replica = show(plane, cid)["instances"][1]["id"]
        groups = plane.http.get(plane.url("/security-groups")).json()["security_groups"]
        group = next(g for g in groups if g["instance_id"] == replica)
        body = {"security_group_rule": {"group_id": group["id"], "cidr": "192.0.2.0/24"}}
        r = plane.http.post(plane.url("/security-group-rules"), json=body)
        assert r.status_code == 501, r.text
        assert "add_security_group_rule of a cluster member" in r.text
        after = plane.http.get(plane.url(f"/security-groups/{group['id']}")).json()
        assert after["security_group"]["rules"] == group["rules"]
