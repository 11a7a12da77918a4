"""SIGKILL of the task manager in the middle of a create, then a restart: the instance
reaches ACTIVE with exactly one of each resource, with the native manager and with the
orchestrator (whose stack operation the dead task manager's engine left IN_PROGRESS: the
restarted one fails it, as Heat does after an engine died, and retries it by an update)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from plane import ControlPlane, make_plane
from sqlalchemy import select

from cellar.cli.server import settings_env
from cellar.config import Settings
from cellar.db.engine import make_session_factory, transaction
from cellar.db.models import Job
from serving import holds_name


def wait_until(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Processes:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.procs: list[subprocess.Popen[bytes]] = []

    def taskmanager(self, name: str, log: Path | None = None) -> subprocess.Popen[bytes]:
        """A `cellar taskmanager --name NAME`; with `log`, its INFO lines go to that file."""
        env = settings_env(self.settings)
        env["CELLAR_LOG_LEVEL"] = "WARNING" if log is None else "INFO"
        with open(log or os.devnull, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cellar", "taskmanager", "--name", name],
                env=env,
                stderr=None if log is None else out,
            )
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture(params=["native", "orchestrator"])
def crash_plane(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[ControlPlane, Processes]]:
    # Slow enough that a kill lands in the middle of the create.
    plane = make_plane(
        tmp_path,
        fake_latency_s=0.15,
        job_lease_s=2.0,
        workers=2,
        resource_manager=request.param,
    )
    procs = Processes(plane.settings)
    try:
        yield plane, procs
    finally:
        procs.stop_all()
        plane.engine.dispose()


def _one_of_each(plane: ControlPlane) -> None:
    assert plane.resources() == {
        "servers": 1,
        "volumes": 1,
        "security_groups": 1,
        "dns_records": 1,
    }


@pytest.mark.parametrize("kill_after", ["volume.create_volume", "compute.create_server"])
def test_sigkill_mid_create_then_restart_reaches_active(
    crash_plane: tuple[ControlPlane, Processes], kill_after: str
) -> None:
    plane, procs = crash_plane
    first = procs.taskmanager("tm-a")
    iid = plane.create()
    wait_until(f"{kill_after} to be called", lambda: plane.cloud.call_count(kill_after) >= 1)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert plane.show(iid)["status"] == "BUILD"

    procs.taskmanager("tm-a")  # the same name: takes its jobs back at once
    wait_until("ACTIVE", lambda: plane.show(iid)["status"] in ("ACTIVE", "ERROR"))
    inst = plane.show(iid)
    assert inst["status"] == "ACTIVE", inst
    _one_of_each(plane)
    assert plane.cloud.call_count("compute.create_server") == 1
    outcomes = [(e["step"], e["outcome"]) for e in plane.events(iid)]
    assert ("provision_instance", "resumed") in outcomes
    if plane.settings.resource_manager == "orchestrator":
        # The dead engine's create was failed, then retried by an update that kept the
        # server and volume it had made (Heat's needs_replace_failed).
        assert ("stack.take_over", "failed") in outcomes

    plane.delete(iid)
    wait_until("deleted", lambda: plane.gone(iid))
    assert plane.orphans() == []


def test_another_task_manager_takes_over_after_the_lease(
    crash_plane: tuple[ControlPlane, Processes],
) -> None:
    plane, procs = crash_plane
    first = procs.taskmanager("tm-a")
    iid = plane.create()
    wait_until("the server create", lambda: plane.cloud.call_count("compute.create_server") >= 1)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()

    procs.taskmanager("tm-b")
    wait_until("ACTIVE", lambda: plane.show(iid)["status"] in ("ACTIVE", "ERROR"))
    assert plane.show(iid)["status"] == "ACTIVE"
    _one_of_each(plane)


def test_sigkill_mid_resize_then_restart_finishes_it(
    crash_plane: tuple[ControlPlane, Processes],
) -> None:
    plane, procs = crash_plane
    first = procs.taskmanager("tm-a")
    iid = plane.create()
    wait_until("ACTIVE", lambda: plane.show(iid)["status"] == "ACTIVE")
    plane.action(iid, {"resize": {"flavorRef": "2"}})
    wait_until("the resize", lambda: plane.cloud.call_count("compute.resize_server") >= 1)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()

    procs.taskmanager("tm-a")

    def settled() -> bool:
        inst = plane.show(iid)
        return inst["status"] == "ERROR" or (
            inst["status"] == "ACTIVE" and inst["flavor"]["id"] == "2"
        )

    wait_until("the resize to end", settled)
    inst = plane.show(iid)
    assert (inst["status"], inst["flavor"]["id"]) == ("ACTIVE", "2"), inst
    assert not inst.get("fault")
    if plane.settings.resource_manager == "orchestrator":
        outcomes = [(e["step"], e["outcome"]) for e in plane.events(iid)]
        assert ("stack.take_over", "failed") in outcomes
    _one_of_each(plane)
    # The database server was resized, never replaced.
    assert plane.cloud.call_count("compute.create_server") == 1
    [server] = plane.services.compute.list_servers()
    assert server.flavor_id == "2"

    plane.delete(iid)
    wait_until("deleted", lambda: plane.gone(iid))
    assert plane.orphans() == []


def test_a_task_manager_waits_for_the_previous_process_of_its_name(
    crash_plane: tuple[ControlPlane, Processes],
) -> None:
    """Taking a name's jobs back at once is safe only once the previous process of that
    name is gone (a stopping one may still be in a step): the second waits for it."""
    plane, procs = crash_plane
    first = procs.taskmanager("tm-a")
    state_dir = plane.settings.state_dir
    wait_until("the first process to hold its name", lambda: holds_name(state_dir, "tm-a"))
    # The second is started, and waits, before the job exists: however long a loaded
    # machine takes to start it, the first is still in the middle of the create when killed.
    log = state_dir / "second.log"
    second = procs.taskmanager("tm-a", log=log)
    wait_until(
        "the second process to wait for the name",
        lambda: "waiting for the previous process" in log.read_text() or second.poll() is not None,
    )
    assert second.poll() is None
    iid = plane.create()
    wait_until("the create to run", lambda: plane.cloud.call_count("volume.create_volume") >= 1)

    def attempts() -> int:
        with transaction(make_session_factory(plane.engine), readonly=True) as session:
            job = session.scalars(select(Job).where(Job.instance_id == iid)).one()
            return job.attempts

    assert attempts() == 1
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    wait_until("ACTIVE", lambda: plane.show(iid)["status"] in ("ACTIVE", "ERROR"))
    assert plane.show(iid)["status"] == "ACTIVE"
    assert attempts() == 2
    _one_of_each(plane)


def test_a_task_manager_stopped_during_a_create_hands_it_to_the_next_of_its_name(
    crash_plane: tuple[ControlPlane, Processes],
) -> None:
    """SIGTERM during a create: the process ends within its stop timeout and the next
    process of that name finishes the job. (A step longer than the timeout, left to be
    resumed, is what the local cloud's kill-serve-during-create test goes through.)"""
    plane, procs = crash_plane
    first = procs.taskmanager("tm-a")
    iid = plane.create()
    wait_until("the create to run", lambda: plane.cloud.call_count("volume.create_volume") >= 1)
    first.terminate()
    first.wait(timeout=20)
    procs.taskmanager("tm-a")
    wait_until("ACTIVE", lambda: plane.show(iid)["status"] in ("ACTIVE", "ERROR"))
    assert plane.show(iid)["status"] == "ACTIVE"
    _one_of_each(plane)
