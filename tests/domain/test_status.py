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
    operating_status,
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
# `SimpleInstance.status` (master, since Wallaby's split of `operating_status`) that
# decides it. The datastore's state never decides it any more: every row is checked with
# each service status.
S, V = ServerStatus, ServiceStatus
DERIVED = [
    # 1. an error task is ERROR, whatever the server says
    *[(T(e), S.ACTIVE, "ERROR") for e in sorted(BUILD_ERRORS)],
    (T.ERROR, S.ACTIVE, "ERROR"),
    (T.BUILDING_ERROR_SERVER, S.BUILD, "ERROR"),
    (T.BUILDING_ERROR_TIMEOUT_GA, None, "ERROR"),
    # 2. BUILDING is BUILD, or ERROR when the server is ERROR
    (T.BUILDING, None, "BUILD"),
    (T.BUILDING, S.BUILD, "BUILD"),
    (T.BUILDING, S.ACTIVE, "BUILD"),
    (T.BUILDING, S.ERROR, "ERROR"),
    # 3. the task of an action, before the server's own status
    (T.REBOOTING, S.ACTIVE, "REBOOT"),
    (T.REBOOTING, S.RESIZE, "REBOOT"),
    (T.RESTARTING, S.ACTIVE, "REBOOT"),
    (T.RESIZING, S.ACTIVE, "RESIZE"),
    (T.RESIZING, S.REBOOT, "RESIZE"),
    (T.RESIZING_VOLUME, S.ACTIVE, "RESIZE"),
    (T.RESTART_REQUIRED, S.ACTIVE, "RESTART_REQUIRED"),
    (T.RESTART_REQUIRED, S.ERROR, "RESTART_REQUIRED"),
    (T.PROMOTING, S.ACTIVE, "PROMOTE"),
    (T.EJECTING, S.ACTIVE, "EJECT"),
    # 4. DELETING: SHUTDOWN while the server is ACTIVE or gone, else ERROR (Trove's list
    #    is ACTIVE, SHUTDOWN, DELETED: Nova's SHUTOFF is not in it)
    (T.DELETING, S.ACTIVE, "SHUTDOWN"),
    (T.DELETING, S.DELETED, "SHUTDOWN"),
    (T.DELETING, None, "SHUTDOWN"),
    (T.DELETING, S.SHUTOFF, "ERROR"),
    (T.DELETING, S.ERROR, "ERROR"),
    (T.DELETING, S.REBOOT, "ERROR"),
    # 5. a backup under way
    (T.BACKING_UP, S.ACTIVE, "BACKUP"),
    # 6. the server's BUILD, ERROR, REBOOT, RESIZE, ACTIVE; VERIFY_RESIZE shows as RESIZE
    (T.NONE, S.BUILD, "BUILD"),
    (T.NONE, S.ERROR, "ERROR"),
    (T.NONE, S.REBOOT, "REBOOT"),
    (T.NONE, S.RESIZE, "RESIZE"),
    (T.NONE, S.VERIFY_RESIZE, "RESIZE"),
    (T.NONE, S.ACTIVE, "ACTIVE"),
    # 7. otherwise UNKNOWN
    (T.NONE, S.SHUTOFF, "UNKNOWN"),
    (T.NONE, S.UNKNOWN, "UNKNOWN"),
    (T.NONE, S.DELETED, "UNKNOWN"),
    (T.NONE, None, "UNKNOWN"),
    # cellar's own terminal task
    (T.DELETED, None, "DELETED"),
    (T.DELETED, S.ERROR, "DELETED"),
]


@pytest.mark.parametrize(("task", "server", "expected"), DERIVED)
def test_derive_status(task: InstanceTask, server: ServerStatus | None, expected: str) -> None:
    for service in V:
        assert derive_status(task, server, service) == expected, service


# operating_status: the datastore's, only while idle on an ACTIVE server.
OPERATING = [
    (T.NONE, S.ACTIVE, V.RUNNING, "HEALTHY"),
    (T.NONE, S.ACTIVE, V.SHUTDOWN, "SHUTDOWN"),
    (T.NONE, S.ACTIVE, V.CRASHED, "SHUTDOWN"),
    (T.NONE, S.ACTIVE, V.BLOCKED, "BLOCKED"),
    (T.NONE, S.ACTIVE, V.FAILED_TIMEOUT_GUESTAGENT, "ERROR"),
    (T.NONE, S.ACTIVE, V.UNKNOWN, "ERROR"),
    (T.NONE, S.SHUTOFF, V.RUNNING, ""),
    (T.NONE, None, V.RUNNING, ""),
    (T.RESTARTING, S.ACTIVE, V.SHUTDOWN, ""),
    (T.RESTART_REQUIRED, S.ACTIVE, V.RUNNING, ""),
    (T.BUILDING, S.ACTIVE, V.BUILDING, ""),
]


@pytest.mark.parametrize(("task", "server", "service", "expected"), OPERATING)
def test_operating_status(
    task: InstanceTask, server: ServerStatus | None, service: ServiceStatus, expected: str
) -> None:
    assert operating_status(task, server, service) == expected


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
