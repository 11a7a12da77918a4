"""What the user, database and root routes share: which instances take them, and the
guest's refusals told as Trove tells them.

Trove's `load_and_verify`: the datastore must be running, else 422. Beyond it, nothing
is done to an instance the control plane is busy with (a resize, a reboot, a promote:
its guest may be down) but a backup, and a replica takes no change at all: it is
read-only, and gets its primary's users and databases by replication (a cluster's are
made on its primary).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import unquote, urlencode

from cellar.api.deps import ApiState
from cellar.api.views.common import Linker
from cellar.db import instances as repo
from cellar.db.engine import transaction
from cellar.db.models import Instance
from cellar.domain.errors import (
    BadRequest,
    CellarError,
    Conflict,
    NotFound,
    OperationIsNotSupported,
    UnprocessableEntity,
)
from cellar.domain.status import (
    IDLE_TASKS,
    InstanceTask,
    ServerStatus,
    ServiceStatus,
    derive_status,
)
from cellar.drivers.base import DriverOperationNotSupported
from cellar.drivers.guest.base import (
    GuestBadValue,
    GuestError,
    GuestObjectExists,
    GuestObjectNotFound,
)

_TASKS = IDLE_TASKS | {InstanceTask.BACKING_UP}

T = TypeVar("T")


class ObjectNotFound(NotFound):
    """A user or database the guest does not have (Trove's UserNotFound, DatabaseNotFound)."""

    def __init__(self, message: str) -> None:
        CellarError.__init__(self, message)
        self.kind, self.resource_id = "", ""


def ready_instance(
    state: ApiState, scope: str | None, instance_id: str, *, change: bool = False
) -> Instance:
    """The instance if its datastore takes user and database commands now; `change`:
    one that makes or alters something (refused on a replica)."""
    with transaction(state.sessions, readonly=True) as session:
        row = repo.get_instance(session, instance_id=instance_id, project_id=scope)
        session.expunge(row)
    task = InstanceTask(row.task_status)
    server = ServerStatus(row.server_status) if row.server_status else None
    service = ServiceStatus(row.service_status)
    if (
        task not in _TASKS
        or server is not ServerStatus.ACTIVE
        or service is not ServiceStatus.RUNNING
    ):
        status = derive_status(task, server, service)
        raise UnprocessableEntity(f"Instance {row.id} is not ready, status: {status}.")
    if change and row.replica_of_id is not None:
        raise UnprocessableEntity(
            f"Instance {row.id} is a read-only replica of {row.replica_of_id}: users and "
            "databases are made on the primary, and reach its replicas by replication."
        )
    return row


@contextmanager
def guest_refusals(state: ApiState, operation: str, field: str = "body") -> Iterator[None]:
    """The guest driver's errors as the API tells them: 409 for a name that exists, 404
    for one that does not, 400 (naming `field`) for a value the datastore cannot take,
    422 for any other refusal, 501 for a backend without it."""
    try:
        yield
    except DriverOperationNotSupported as exc:
        raise OperationIsNotSupported(operation, state.settings.backend) from exc
    except GuestObjectExists as exc:
        raise Conflict(exc.detail) from None
    except GuestObjectNotFound as exc:
        raise ObjectNotFound(exc.detail) from None
    except GuestBadValue as exc:
        raise BadRequest(field, exc.detail) from None
    except GuestError as exc:
        raise UnprocessableEntity(f"The instance's guest refused: {exc.message}") from exc


def existing(kind: str, name: str) -> str:
    """A name from a path, or 404 if no datastore object can be named so (PostgreSQL's
    names are 1 to 63 characters, none of them NUL)."""
    if not name or len(name) > 63 or "\0" in name:
        raise ObjectNotFound(f"{kind} {name[:63]!r} cannot be found on the instance.")
    return name


def user_name(path_value: str) -> str:
    """Trove's `name@host` path segment (quoted once more by troveclient): the name."""
    unquoted = unquote(path_value)
    name, at, _host = unquoted.rpartition("@")
    return name if at else unquoted


def page(
    items: Sequence[T], name_of: Any, *, limit: int, marker: str | None
) -> tuple[list[T], str | None]:
    """One page of `items` (sorted by name) after `marker` (exclusive), and the next
    page's marker: the last name shown, when more follow (Trove's `paginate_list`)."""
    after = [i for i in items if marker is None or name_of(i) > marker]
    shown = after[:limit]
    return shown, (name_of(shown[-1]) if len(after) > limit else None)


def next_links(
    linker: Linker, tenant_id: str, path: str, limit: int, marker: str | None
) -> list[dict[str, str]] | None:
    if marker is None:
        return None
    query = urlencode({"limit": limit, "marker": marker})
    return [{"rel": "next", "href": f"{linker.url(tenant_id, path)}?{query}"}]
