"""Fault injection at every fake-cloud call of create, resize, resize-volume and delete:
every run ends with the instance ERROR (or reverted) and nothing orphaned."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from plane import ControlPlane

from cellar.drivers.fake import FakeCloud


def calls_made(cloud: FakeCloud, run: Callable[[], None]) -> list[str]:
    """The fake-cloud operations that `run` calls at least once."""
    before = {op: cloud.call_count(op) for op in cloud.operations()}
    run()
    return sorted(op for op in cloud.operations() if cloud.call_count(op) > before[op])


@pytest.fixture
def phases(plane: ControlPlane) -> dict[str, list[str]]:
    """The operations of each phase, measured on a clean instance in this plane."""
    iid = plane.create("probe")
    found = {"create": calls_made(plane.cloud, plane.run)}
    plane.action(iid, {"resize": {"flavorRef": "2"}})
    found["resize"] = calls_made(plane.cloud, plane.run)
    plane.action(iid, {"resize": {"volume": {"size": 2}}})
    found["resize_volume"] = calls_made(plane.cloud, plane.run)
    plane.delete(iid)
    found["delete"] = calls_made(plane.cloud, plane.run)
    assert plane.orphans() == []
    return found


def _assert_clean_after_delete(plane: ControlPlane, iid: str) -> None:
    plane.cloud.clear_faults()
    plane.delete(iid)
    plane.run()
    assert plane.gone(iid)
    assert plane.orphans() == []
    assert sum(plane.resources().values()) == 0


def test_every_create_call_failing_leaves_error_and_no_orphan(
    plane: ControlPlane, phases: dict[str, list[str]]
) -> None:
    assert "compute.create_server" in phases["create"]
    for op in phases["create"]:
        plane.cloud.inject_fault(op, transient=False)
        iid = plane.create(f"fail-{op}")
        plane.run()
        inst = plane.show(iid)
        assert inst["status"] == "ERROR", (op, inst)
        assert inst["fault"]["message"], op
        assert plane.orphans() == [], op
        assert sum(plane.resources().values()) == 0, (op, plane.resources())
        _assert_clean_after_delete(plane, iid)


def test_every_create_call_failing_once_transiently_is_retried(
    plane: ControlPlane, phases: dict[str, list[str]]
) -> None:
    for op in phases["create"]:
        plane.cloud.inject_fault(op, transient=True)
        iid = plane.create(f"flaky-{op}")
        plane.run()
        assert plane.show(iid)["status"] == "ACTIVE", op
        _assert_clean_after_delete(plane, iid)


@pytest.mark.parametrize(
    ("phase", "body", "field", "before"),
    [
        ("resize", {"resize": {"flavorRef": "2"}}, ("flavor", "id"), "1"),
        ("resize_volume", {"resize": {"volume": {"size": 2}}}, ("volume", "size"), 1),
    ],
)
def test_every_resize_call_failing_reverts_or_errors(
    plane: ControlPlane,
    phases: dict[str, list[str]],
    phase: str,
    body: dict[str, object],
    field: tuple[str, str],
    before: object,
) -> None:
    assert phases[phase]
    for op in phases[phase]:
        iid = plane.create(f"{phase}-{op}")
        plane.run()
        plane.cloud.inject_fault(op, transient=False)
        plane.action(iid, body)
        plane.run()
        inst = plane.show(iid)
        assert inst["fault"]["message"], (op, inst)
        if inst["status"] == "ACTIVE":
            assert inst[field[0]][field[1]] == before, (op, inst)
        else:
            assert inst["status"] == "ERROR", (op, inst)
        assert plane.orphans() == [], op
        _assert_clean_after_delete(plane, iid)


def test_every_delete_call_failing_leaves_error_then_delete_again_works(
    plane: ControlPlane, phases: dict[str, list[str]]
) -> None:
    assert phases["delete"]
    for op in phases["delete"]:
        iid = plane.create(f"del-{op}")
        plane.run()
        plane.cloud.inject_fault(op, transient=False)
        plane.delete(iid)
        plane.run()
        inst = plane.show(iid)
        assert inst["status"] == "ERROR", (op, inst)
        assert inst["fault"]["message"], op
        _assert_clean_after_delete(plane, iid)


def test_a_job_that_breaks_outside_its_flow_leaves_error_not_build(
    plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug of the task manager itself (here: its flow logbook cannot be read) must not
    leave the instance BUILD with nothing running: ERROR with the fault, and deletable."""

    def unreadable(job: object) -> None:
        raise RuntimeError("logbook unreadable")

    monkeypatch.setattr(plane.tm, "_logbook", unreadable)
    iid = plane.create()
    plane.run()
    inst = plane.show(iid)
    assert inst["status"] == "ERROR", inst
    assert "logbook unreadable" in inst["fault"]["message"]
    monkeypatch.undo()
    plane.delete(iid)
    plane.run()
    assert plane.gone(iid) and plane.orphans() == []
