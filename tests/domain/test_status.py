"""The instance lifecycle rules (`cellar.domain.status`) against Trove's semantics.

The tables here are written out by hand from Trove (`trove/instance/tasks.py`,
`SimpleInstance.status`, `validate_can_perform_action`), not derived from the module
under test, and every (from, to) pair of tasks is checked against them.
"""

from __future__ import annotations

import itertools

import pytest

from cellar.domain.errors import InvalidTransition, UnprocessableEntity
from cellar.domain.status import (
    InstanceTask,
    ServerStatus,
    ServiceStatus,
    check_can_act,
    check_transition,
    derive_status,
)

T = InstanceTask

# PROMOTING: a replica being switched over to; EJECTING: a dead primary being failed over.
BUSY = {
    "REBOOTING", "RESTARTING", "RESIZING", "RESIZING_VOLUME", "PROMOTING", "EJECTING",
    "BACKING_UP",
}  # fmt: skip
BUILD_ERRORS = {
    "BUILDING_ERROR_SEC_GROUP",
    "BUILDING_ERROR_VOLUME",
    "BUILDING_ERROR_SERVER",
    "BUILDING_ERROR_DNS",
    "BUILDING_ERROR_TIMEOUT_GA",
}

# from -> the tasks it may change to (staying put is a no-op, allowed except for DELETED).
# - a build ends idle (NONE) or in the error of the step that failed;
# - an action starts only from an idle task (NONE, RESTART_REQUIRED) and ends idle or in ERROR;
# - delete is allowed from every live state (Trove's force-delete of a BUILD instance
#   included), and a failed delete (ERROR) may be retried;
# - an error task only goes on to DELETING; DELETED is terminal.
ALLOWED: dict[str, set[str]] = {
    "BUILDING": {"NONE", "DELETING", "ERROR"} | BUILD_ERRORS,
    "NONE": BUSY | {"RESTART_REQUIRED", "DELETING"},
    "RESTART_REQUIRED": BUSY | {"NONE", "DELETING"},
    "REBOOTING": {"NONE", "ERROR", "DELETING"},
    "RESTARTING": {"NONE", "ERROR", "DELETING"},
    "RESIZING": {"NONE", "ERROR", "DELETING"},
    "RESIZING_VOLUME": {"NONE", "ERROR", "DELETING"},
    "PROMOTING": {"NONE", "ERROR", "DELETING"},
    "EJECTING": {"NONE", "ERROR", "DELETING"},
    "BACKING_UP": {"NONE", "ERROR", "DELETING"},
    "BUILDING_ERROR_SEC_GROUP": {"DELETING"},
    "BUILDING_ERROR_VOLUME": {"DELETING"},
    "BUILDING_ERROR_SERVER": {"DELETING"},
    "BUILDING_ERROR_DNS": {"DELETING"},
    "BUILDING_ERROR_TIMEOUT_GA": {"DELETING"},
    "ERROR": {"DELETING"},
    "DELETING": {"DELETED", "ERROR"},
    "DELETED": set(),
}


def _allowed(current: InstanceTask, target: InstanceTask) -> bool:
    if current is target:
        return current is not T.DELETED
    return target.value in ALLOWED[current.value]


def test_the_table_names_every_task() -> None:
    names = {t.value for t in T}
    assert set(ALLOWED) == names
    assert set().union(*ALLOWED.values()) <= names


@pytest.mark.parametrize(
    ("current", "target"), list(itertools.product(T, T)), ids=lambda t: str(t.value)
)
def test_transition(current: InstanceTask, target: InstanceTask) -> None:
    if _allowed(current, target):
        check_transition(current, target)
    else:
        with pytest.raises(InvalidTransition) as raised:
            check_transition(current, target)
        assert isinstance(raised.value, UnprocessableEntity)  # HTTP 422
        assert (raised.value.current, raised.value.target) == (current.value, target.value)


def test_delete_is_allowed_from_every_live_state() -> None:
    for task in T:
        if task is not T.DELETED:
            check_transition(task, T.DELETING)


def test_error_tasks_only_go_to_deleting() -> None:
    errors = [t for t in T if t.is_error]
    assert {t.value for t in errors} == BUILD_ERRORS | {"ERROR"}
    for task, target in itertools.product(errors, T):
        if target not in (T.DELETING, task):
            with pytest.raises(InvalidTransition):
                check_transition(task, target)


def test_deleted_is_terminal() -> None:
    for target in T:
        with pytest.raises(InvalidTransition):
            check_transition(T.DELETED, target)


# derive_status: (task, server, service) -> API status, grouped by the step of Trove's
# `SimpleInstance.status` that decides it (trove-reference.md section 2).
S, V = ServerStatus, ServiceStatus
DERIVED = [
    # 1. an error task is ERROR, whatever the server and the datastore say
    *[(T(e), S.ACTIVE, V.RUNNING, "ERROR") for e in sorted(BUILD_ERRORS)],
    (T.ERROR, S.ACTIVE, V.RUNNING, "ERROR"),
    (T.BUILDING_ERROR_SERVER, S.BUILD, V.NEW, "ERROR"),
    (T.BUILDING_ERROR_TIMEOUT_GA, None, V.FAILED_TIMEOUT_GUESTAGENT, "ERROR"),
    # 2. BUILDING is BUILD, or ERROR when the server is ERROR
    (T.BUILDING, None, V.NEW, "BUILD"),
    (T.BUILDING, S.BUILD, V.NEW, "BUILD"),
    (T.BUILDING, S.ACTIVE, V.RUNNING, "BUILD"),
    (T.BUILDING, S.ERROR, V.NEW, "ERROR"),
    # 3. the task of an action, before the server's own status
    (T.REBOOTING, S.ACTIVE, V.RUNNING, "REBOOT"),
    (T.REBOOTING, S.RESIZE, V.SHUTDOWN, "REBOOT"),
    (T.RESTARTING, S.ACTIVE, V.RUNNING, "REBOOT"),
    (T.RESIZING, S.ACTIVE, V.RUNNING, "RESIZE"),
    (T.RESIZING, S.REBOOT, V.PAUSED, "RESIZE"),
    (T.RESIZING_VOLUME, S.ACTIVE, V.SHUTDOWN, "RESIZE"),
    # Trove's replication statuses while a switchover or a failover runs.
    (T.PROMOTING, S.ACTIVE, V.RUNNING, "PROMOTE"),
    (T.EJECTING, S.ACTIVE, V.SHUTDOWN, "EJECT"),
    (T.BACKING_UP, S.ACTIVE, V.RUNNING, "BACKUP"),
    (T.RESTART_REQUIRED, S.ACTIVE, V.RUNNING, "RESTART_REQUIRED"),
    (T.RESTART_REQUIRED, S.ERROR, V.RUNNING, "RESTART_REQUIRED"),
    # DELETING (Trove master's `SimpleInstance.status`, after the action tasks): SHUTDOWN
    # while the server is ACTIVE, SHUTDOWN or DELETED (a missing server is faked as
    # SHUTDOWN), else ERROR, whatever the datastore says and before the server's status.
    (T.DELETING, S.ACTIVE, V.RUNNING, "SHUTDOWN"),
    (T.DELETING, S.DELETED, V.SHUTDOWN, "SHUTDOWN"),
    (T.DELETING, None, V.UNKNOWN, "SHUTDOWN"),
    (T.DELETING, S.SHUTOFF, V.SHUTDOWN, "ERROR"),
    (T.DELETING, S.ERROR, V.RUNNING, "ERROR"),
    (T.DELETING, S.REBOOT, V.SHUTDOWN, "ERROR"),
    (T.DELETING, S.RESIZE, V.RUNNING, "ERROR"),
    (T.DELETING, S.VERIFY_RESIZE, V.RUNNING, "ERROR"),
    (T.DELETING, S.BUILD, V.NEW, "ERROR"),
    # 4. the server's BUILD, ERROR, REBOOT, RESIZE; VERIFY_RESIZE shows as RESIZE
    (T.NONE, S.BUILD, V.RUNNING, "BUILD"),
    (T.NONE, S.ERROR, V.RUNNING, "ERROR"),
    (T.NONE, S.REBOOT, V.RUNNING, "REBOOT"),
    (T.NONE, S.RESIZE, V.RUNNING, "RESIZE"),
    (T.NONE, S.VERIFY_RESIZE, V.RUNNING, "RESIZE"),
    # 7. a PAUSED datastore (during a reboot) is REBOOT, a NEW one BUILD
    (T.NONE, S.ACTIVE, V.PAUSED, "REBOOT"),
    (T.NONE, S.ACTIVE, V.NEW, "BUILD"),
    (T.NONE, S.SHUTOFF, V.PAUSED, "REBOOT"),
    # 8. otherwise the datastore's API status
    (T.NONE, S.ACTIVE, V.RUNNING, "ACTIVE"),
    (T.NONE, S.ACTIVE, V.BLOCKED, "BLOCKED"),
    (T.NONE, S.ACTIVE, V.SHUTDOWN, "SHUTDOWN"),
    (T.NONE, S.SHUTOFF, V.SHUTDOWN, "SHUTDOWN"),
    (T.NONE, S.ACTIVE, V.CRASHED, "SHUTDOWN"),
    (T.NONE, S.ACTIVE, V.FAILED, "FAILED"),
    (T.NONE, S.ACTIVE, V.BUILDING, "BUILD"),
    (T.NONE, S.ACTIVE, V.BUILD_PENDING, "BUILD"),
    (T.NONE, S.ACTIVE, V.UNKNOWN, "ERROR"),
    (T.NONE, S.UNKNOWN, V.FAILED_TIMEOUT_GUESTAGENT, "ERROR"),
    (T.NONE, None, V.RUNNING, "ACTIVE"),
    (T.NONE, S.DELETED, V.DELETED, "DELETED"),
    # cellar's own terminal task
    (T.DELETED, None, V.DELETED, "DELETED"),
    (T.DELETED, S.ERROR, V.RUNNING, "DELETED"),
]


@pytest.mark.parametrize(("task", "server", "service", "expected"), DERIVED)
def test_derive_status(
    task: InstanceTask, server: ServerStatus | None, service: ServiceStatus, expected: str
) -> None:
    assert derive_status(task, server, service) == expected


def test_service_api_status_is_troves_mapping() -> None:
    assert {s.value: s.api_status for s in V} == {
        "RUNNING": "ACTIVE",
        "BLOCKED": "BLOCKED",
        "PAUSED": "SHUTDOWN",
        "SHUTDOWN": "SHUTDOWN",
        "DELETED": "DELETED",
        "CRASHED": "SHUTDOWN",
        "FAILED": "FAILED",
        "BUILDING": "BUILD",
        "UNKNOWN": "ERROR",
        "NEW": "NEW",
        "FAILED_TIMEOUT_GUESTAGENT": "ERROR",
        "BUILD_PENDING": "BUILD",
    }


def test_check_can_act_over_every_combination() -> None:
    """An action may start only when the task is idle, the server ACTIVE and the datastore
    RUNNING, SHUTDOWN, CRASHED or BLOCKED; anything else is 422."""
    idle = {"NONE", "RESTART_REQUIRED"}
    actionable = {"RUNNING", "SHUTDOWN", "CRASHED", "BLOCKED"}
    wrong = []
    for task, server, service in itertools.product(T, [None, *S], V):
        expected = task.value in idle and server is S.ACTIVE and service.value in actionable
        try:
            check_can_act(task, server, service)
            allowed = True
        except UnprocessableEntity:
            allowed = False
        if allowed != expected:
            wrong.append((task.value, server and server.value, service.value, allowed))
    assert wrong == []


@pytest.mark.parametrize(
    ("task", "server", "service", "says"),
    [
        (T.RESIZING, S.ACTIVE, V.RUNNING, "RESIZING"),
        (T.NONE, None, V.RUNNING, "missing"),
        (T.NONE, S.SHUTOFF, V.RUNNING, "SHUTOFF"),
        (T.NONE, S.ACTIVE, V.FAILED, "FAILED"),
    ],
)
def test_check_can_act_says_why(
    task: InstanceTask, server: ServerStatus | None, service: ServiceStatus, says: str
) -> None:
    with pytest.raises(UnprocessableEntity, match=says):
        check_can_act(task, server, service)
