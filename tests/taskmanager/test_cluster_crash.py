"""SIGKILL of the task manager in the middle of a cluster's build, grow and switchover,
and of a backup (native manager, fake cloud with latency): a restarted task manager of
the same name resumes each job from its last finished step; the cluster ends idle with
exactly the members asked for, one primary, and nothing orphaned; the backup completes
once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from plane import ControlPlane, make_plane
from sqlalchemy import select
from test_clusters import act, create_cluster, member, show
from test_crash import Processes, wait_until

from cellar.db.engine import make_session_factory, transaction
from cellar.db.models import Job


@pytest.fixture
def crash_plane(tmp_path: Path) -> Iterator[tuple[ControlPlane, Processes]]:
    # Slow enough that a kill lands in the middle of a job.
    plane = make_plane(tmp_path, fake_latency_s=0.15, job_lease_s=2.0, workers=2)
    procs = Processes(plane.settings)
    try:
        yield plane, procs
    finally:
        procs.stop_all()
        plane.engine.dispose()


def attempts(plane: ControlPlane, cid: str, kind: str) -> int:
    with transaction(make_session_factory(plane.engine), readonly=True) as session:
        job = session.scalars(select(Job).where(Job.instance_id == cid, Job.kind == kind)).one()
        return job.attempts


def kill_when(plane: ControlPlane, procs: Processes, operation: str, count: int) -> None:
    """SIGKILL the running task manager once the fake cloud saw `count` calls of
    `operation`, and start its successor (same name: it takes the jobs back at once)."""
    wait_until(operation, lambda: plane.cloud.call_count(operation) >= count)
    procs.stop_all()  # SIGKILL
    procs.taskmanager("tm-a")


def idle(plane: ControlPlane, cid: str) -> dict[str, object]:
    wait_until("the cluster", lambda: show(plane, cid)["task"]["name"] in ("NONE", "ERROR"))
    view = show(plane, cid)
    assert view["task"]["name"] == "NONE", view
    return view


def test_build_grow_and_switchover_survive_a_killed_task_manager(
    crash_plane: tuple[ControlPlane, Processes],
) -> None:
    plane, procs = crash_plane
    procs.taskmanager("tm-a")
    cid = create_cluster(plane, [member("2", 2), member(), member()])
    # Killed once the primary is built and the replicas' volumes are being made.
    kill_when(plane, procs, "volume.create_volume", 2)
    view = idle(plane, cid)
    assert attempts(plane, cid, "provision_cluster") == 2
    assert [m["role"] for m in view["instances"]] == ["primary", "replica", "replica"]
    assert all(m["status"] == "ACTIVE" for m in view["instances"])
    assert plane.resources() == {
        "servers": 3, "volumes": 3, "security_groups": 3, "dns_records": 3 + 2
    }  # fmt: skip

    act(plane, cid, {"grow": [member("3", 3, name="more")]})
    kill_when(plane, procs, "volume.create_volume", 4)
    view = idle(plane, cid)
    assert attempts(plane, cid, "grow_cluster") == 2
    assert [m["name"] for m in view["instances"]] == ["pg-1", "pg-2", "pg-3", "more"]
    assert plane.resources()["servers"] == 4

    old, candidate = view["instances"][0]["id"], view["instances"][1]["id"]
    plane.action(candidate, {"promote_to_replica_source": {}})
    # Killed after the old primary stopped, before the candidate is promoted or soon after.
    kill_when(plane, procs, "guest.stop_db", 1)
    view = idle(plane, cid)
    assert attempts(plane, cid, "switchover_cluster") == 2
    roles = {m["id"]: m["role"] for m in view["instances"]}
    assert roles[candidate] == "primary" and roles[old] == "replica"
    assert list(roles.values()).count("primary") == 1
    assert all(m["status"] == "ACTIVE" for m in view["instances"])
    guest = plane.services.guest
    assert {r.slot for r in guest.replication_status(candidate).replicas} == {
        f"cellar_{m['id'].replace('-', '_')}" for m in view["instances"] if m["id"] != candidate
    }

    assert plane.http.delete(plane.url(f"/clusters/{cid}")).status_code == 202
    wait_until("deleted", lambda: plane.http.get(plane.url(f"/clusters/{cid}")).status_code == 404)
    assert sum(plane.resources().values()) == 0 and plane.orphans() == []


def test_a_backup_survives_a_killed_task_manager(tmp_path: Path) -> None:
    # Slow enough that the kill lands while the repository takes the backup.
    plane = make_plane(tmp_path, fake_latency_s=0.5, job_lease_s=2.0, workers=2)
    procs = Processes(plane.settings)
    try:
        procs.taskmanager("tm-a")
        iid = plane.create("src")
        wait_until("ACTIVE", lambda: plane.show(iid)["status"] == "ACTIVE")
        body = {"backup": {"name": "b", "instance": iid}}
        r = plane.http.post(plane.url("/backups"), json=body)
        assert r.status_code == 202, r.text
        bid = r.json()["backup"]["id"]
        kill_when(plane, procs, "backup.start_backup", 1)

        def ended() -> bool:
            status = plane.http.get(plane.url(f"/backups/{bid}")).json()["backup"]["status"]
            return status in ("COMPLETED", "FAILED")

        wait_until("the backup", ended)
        found = plane.http.get(plane.url(f"/backups/{bid}")).json()["backup"]
        assert found["status"] == "COMPLETED", found
        assert attempts(plane, iid, "backup_instance") == 2
        assert plane.show(iid)["status"] == "ACTIVE"
        # Started once: the successor found the repository's backup running (one set).
        assert plane.services.backup is not None
        assert [s.backup_id for s in plane.services.backup.list_backup_sets(iid)] == [bid]
    finally:
        procs.stop_all()
        plane.engine.dispose()
