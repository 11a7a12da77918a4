"""Instance lifecycle: task status, server status, service status and the derived API status.

This follows Trove (`trove/instance/tasks.py`, `service_status.py` and
`SimpleInstance.status`): three stored facts, one status derived from them. Task status
changes only through `TASK_TRANSITIONS`, never by writing a column from anywhere.
"""

from __future__ import annotations

import enum

from cellar.domain.errors import InvalidTransition, UnprocessableEntity


class InstanceTask(enum.Enum):
    """What the control plane is doing to an instance (Trove's InstanceTasks)."""

    NONE = "NONE"
    BUILDING = "BUILDING"
    DELETING = "DELETING"
    REBOOTING = "REBOOTING"
    RESTARTING = "RESTARTING"
    RESIZING = "RESIZING"
    RESIZING_VOLUME = "RESIZING_VOLUME"
    # A replica being promoted (switchover), a failed primary being ejected (failover).
    PROMOTING = "PROMOTING"
    EJECTING = "EJECTING"
    # A backup of the instance is being taken (Trove's status BACKUP).
    BACKING_UP = "BACKING_UP"
    RESTART_REQUIRED = "RESTART_REQUIRED"
    BUILDING_ERROR_SEC_GROUP = "BUILDING_ERROR_SEC_GROUP"
    BUILDING_ERROR_VOLUME = "BUILDING_ERROR_VOLUME"
    BUILDING_ERROR_SERVER = "BUILDING_ERROR_SERVER"
    BUILDING_ERROR_DNS = "BUILDING_ERROR_DNS"
    BUILDING_ERROR_TIMEOUT_GA = "BUILDING_ERROR_TIMEOUT_GA"
    ERROR = "ERROR"
    DELETED = "DELETED"

    @property
    def is_error(self) -> bool:
        return self.value.startswith("BUILDING_ERROR") or self is InstanceTask.ERROR


BUILD_ERRORS = frozenset(t for t in InstanceTask if t.is_error)

# Tasks during which an action (resize, restart, reboot) may start: Trove's
# `validate_can_perform_action` allows NONE and RESTART_REQUIRED.
IDLE_TASKS = frozenset({InstanceTask.NONE, InstanceTask.RESTART_REQUIRED})

_BUSY = frozenset(
    {
        InstanceTask.REBOOTING,
        InstanceTask.RESTARTING,
        InstanceTask.RESIZING,
        InstanceTask.RESIZING_VOLUME,
        InstanceTask.PROMOTING,
        InstanceTask.EJECTING,
        InstanceTask.BACKING_UP,
    }
)

# Allowed task changes. Delete is allowed from every live state (a BUILD or ERROR
# instance can always be deleted); DELETING can fail back to ERROR and be retried.
TASK_TRANSITIONS: dict[InstanceTask, frozenset[InstanceTask]] = {
    InstanceTask.BUILDING: frozenset({InstanceTask.NONE, InstanceTask.DELETING} | BUILD_ERRORS),
    InstanceTask.NONE: frozenset(_BUSY | {InstanceTask.DELETING, InstanceTask.RESTART_REQUIRED}),
    InstanceTask.RESTART_REQUIRED: frozenset(_BUSY | {InstanceTask.DELETING, InstanceTask.NONE}),
    **{
        busy: frozenset({InstanceTask.NONE, InstanceTask.ERROR, InstanceTask.DELETING})
        for busy in _BUSY
    },
    **{err: frozenset({InstanceTask.DELETING}) for err in BUILD_ERRORS},
    InstanceTask.DELETING: frozenset({InstanceTask.DELETED, InstanceTask.ERROR}),
    InstanceTask.DELETED: frozenset(),
}


def check_transition(current: InstanceTask, target: InstanceTask) -> None:
    """Raise `InvalidTransition` unless the task may go from `current` to `target`."""
    if current is target and target is not InstanceTask.DELETED:
        return
    if target not in TASK_TRANSITIONS[current]:
        raise InvalidTransition("The instance's task", current.value, target.value)


def check_reset(current: InstanceTask) -> None:
    """Trove's `reset_status` takes an instance to NONE from any task but DELETED: the
    one change that overrides `TASK_TRANSITIONS`, for an administrator."""
    if current is InstanceTask.DELETED:
        raise InvalidTransition("The instance's task", current.value, InstanceTask.NONE.value)


class ServerStatus(enum.Enum):
    """The compute server's state, mapped by each driver from the provider's own string."""

    BUILD = "BUILD"
    ACTIVE = "ACTIVE"
    REBOOT = "REBOOT"
    RESIZE = "RESIZE"
    VERIFY_RESIZE = "VERIFY_RESIZE"
    SHUTOFF = "SHUTOFF"
    ERROR = "ERROR"
    DELETED = "DELETED"
    UNKNOWN = "UNKNOWN"


class ServiceStatus(enum.Enum):
    """The datastore's state inside the server, as the guest reports it."""

    NEW = "NEW"
    BUILD_PENDING = "BUILD_PENDING"
    BUILDING = "BUILDING"
    RUNNING = "RUNNING"
    BLOCKED = "BLOCKED"
    PAUSED = "PAUSED"
    SHUTDOWN = "SHUTDOWN"
    CRASHED = "CRASHED"
    FAILED = "FAILED"
    FAILED_TIMEOUT_GUESTAGENT = "FAILED_TIMEOUT_GUESTAGENT"
    UNKNOWN = "UNKNOWN"
    DELETED = "DELETED"

    @property
    def api_status(self) -> str:
        return _SERVICE_API_STATUS[self]


_SERVICE_API_STATUS: dict[ServiceStatus, str] = {
    ServiceStatus.NEW: "NEW",
    ServiceStatus.BUILD_PENDING: "BUILD",
    ServiceStatus.BUILDING: "BUILD",
    ServiceStatus.RUNNING: "ACTIVE",
    ServiceStatus.BLOCKED: "BLOCKED",
    ServiceStatus.PAUSED: "SHUTDOWN",
    ServiceStatus.SHUTDOWN: "SHUTDOWN",
    ServiceStatus.CRASHED: "SHUTDOWN",
    ServiceStatus.FAILED: "FAILED",
    ServiceStatus.FAILED_TIMEOUT_GUESTAGENT: "ERROR",
    ServiceStatus.UNKNOWN: "ERROR",
    ServiceStatus.DELETED: "DELETED",
}

# Service states in which Trove lets an action start.
ACTIONABLE_SERVICE = frozenset(
    {ServiceStatus.RUNNING, ServiceStatus.SHUTDOWN, ServiceStatus.CRASHED, ServiceStatus.BLOCKED}
)


def derive_status(task: InstanceTask, server: ServerStatus | None, service: ServiceStatus) -> str:
    """The instance status a user sees, as Trove's `SimpleInstance.status` derives it since
    Wallaby: from the task, then the server. The datastore's own state is shown apart, as
    `operating_status`. (`service` stays in the signature; the status does not read it.)"""
    del service
    if task.is_error:
        return "ERROR"
    if task is InstanceTask.DELETED:
        return "DELETED"
    if task is InstanceTask.BUILDING:
        return "ERROR" if server is ServerStatus.ERROR else "BUILD"
    by_task = _STATUS_OF_TASK.get(task)
    if by_task is not None:
        return by_task
    if task is InstanceTask.DELETING:
        # Trove: SHUTDOWN while the server is ACTIVE, shut down or gone; a server in any
        # other state (ERROR, REBOOT, SHUTOFF is not among Trove's) is ERROR.
        return "SHUTDOWN" if server in _DELETABLE_SERVERS else "ERROR"
    if task is InstanceTask.BACKING_UP:
        return "BACKUP"
    if server in _SHOWN_SERVER_STATES:
        return str(server.value)
    if server is ServerStatus.VERIFY_RESIZE:
        return "RESIZE"
    return "UNKNOWN"


_STATUS_OF_TASK = {
    InstanceTask.REBOOTING: "REBOOT",
    InstanceTask.RESTARTING: "REBOOT",
    InstanceTask.RESIZING: "RESIZE",
    InstanceTask.RESIZING_VOLUME: "RESIZE",
    InstanceTask.RESTART_REQUIRED: "RESTART_REQUIRED",
    InstanceTask.PROMOTING: "PROMOTE",
    InstanceTask.EJECTING: "EJECT",
}
_DELETABLE_SERVERS = frozenset({ServerStatus.ACTIVE, ServerStatus.DELETED, None})
_SHOWN_SERVER_STATES = frozenset(
    {
        ServerStatus.BUILD,
        ServerStatus.ERROR,
        ServerStatus.REBOOT,
        ServerStatus.RESIZE,
        ServerStatus.ACTIVE,
    }
)


def operating_status(
    task: InstanceTask, server: ServerStatus | None, service: ServiceStatus
) -> str:
    """The database's own state as Trove shows it since Wallaby (`operating_status`): empty
    while a task runs or the server is not ACTIVE, else the datastore's status. A datastore
    that accepts connections (RUNNING here) is HEALTHY, as Trove's guest calls one whose
    health check passes."""
    if task is not InstanceTask.NONE or server is not ServerStatus.ACTIVE:
        return ""
    if service is ServiceStatus.RUNNING:
        return "HEALTHY"
    return service.api_status


def check_can_act(task: InstanceTask, server: ServerStatus | None, service: ServiceStatus) -> None:
    """Trove's `validate_can_perform_action`: refuse (422) unless the instance is idle."""
    status = derive_status(task, server, service)
    if task not in IDLE_TASKS:
        raise UnprocessableEntity(
            f"Instance is not ready for an action: status is {status} (task {task.value})."
        )
    if server is not ServerStatus.ACTIVE:
        raise UnprocessableEntity(
            f"Instance is not ready for an action: its server is "
            f"{server.value if server else 'missing'}."
        )
    if service not in ACTIONABLE_SERVICE:
        raise UnprocessableEntity(
            f"Instance is not ready for an action: its datastore is {service.value}."
        )
