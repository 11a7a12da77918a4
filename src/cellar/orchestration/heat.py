"""`HeatStackService`: the `StackService` protocol on a real OpenStack Heat, through
openstacksdk (this module and `cellar.drivers.openstack` are the only importers of it).

Build one from a clouds.yaml cloud (`HeatStackService.from_cloud("mycloud")`), from a
keystoneauth session with an identity plugin (`from_cloud(session=...)`: Heat is found in
the token's catalog), or from a `Connection` already made. An endpoint override with a
catalog-less plugin (`token_endpoint`, `noauth`) does not work: keystoneauth then insists
on discovering the API version at the endpoint, which Heat does not serve without a token.

Where openstacksdk's own calls do not give Heat's semantics, the orchestration proxy's raw
HTTP methods are used instead (it is a keystoneauth adapter on Heat's endpoint):

- update: `update_stack` is a PUT, which resets parameters left out to their defaults; the
  protocol wants Heat's PATCH (`PATCH /stacks/{name}/{id}`), where a body without
  `template` keeps the stored one and parameters not given keep their current value;
- template: `get_stack_template` maps the template onto a fixed set of attributes (HOT's
  `description` is lost, CFN's `Description` kept), so the raw JSON is read instead;
- signal: the SDK has no resource signal call.

Heat looks a stack up by id or name with a redirect (`GET /stacks/{id}` -> 302 to
`/stacks/{name}/{id}`); every operation here first fetches the stack, which answers a
deleted stack as DELETE_COMPLETE (openstacksdk then raises NotFoundException), so a deleted
stack is `StackNotFound` everywhere, as on the embedded engine.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import openstack
from keystoneauth1.session import Session
from openstack import exceptions
from openstack.connection import Connection
from openstack.orchestration.v1._proxy import Proxy
from openstack.orchestration.v1.stack import Stack as SdkStack

from cellar.orchestration.stacks import (
    REBOOT,
    SignalNotSupported,
    Stack,
    StackError,
    StackEvent,
    StackNotFound,
    StackResource,
)


def _message(exc: exceptions.SDKException) -> str:
    """Heat's own words: openstacksdk puts the `error.message` of Heat's error body in
    `details`; its `str()` adds the URL and the status, which is noise for a user."""
    if isinstance(exc, exceptions.HttpException) and exc.details:
        return str(exc.details)
    return exc.message


@contextmanager
def _heat_errors(stack_id: str | None, *, missing_is_stack: bool = True) -> Iterator[None]:
    """Map openstacksdk's errors onto the protocol's: a 404 is `StackNotFound` (unless the
    stack is known to exist and the 404 is about something in it), anything else the SDK
    raises is `StackError` with Heat's message. Connection failures (keystoneauth's) are
    left alone: they are not Heat refusing anything, and a caller may retry them."""
    try:
        yield
    except exceptions.NotFoundException as exc:
        if missing_is_stack and stack_id is not None:
            raise StackNotFound(stack_id) from exc
        raise StackError(_message(exc), stack_id=stack_id) from exc
    except exceptions.SDKException as exc:
        raise StackError(_message(exc), stack_id=stack_id) from exc


def _raise_for(response: Any) -> None:
    """The raw proxy calls do not raise (`raise_exc=False`): turn an error into the SDK's
    exception, as its own calls do, so that `_heat_errors` maps it."""
    exceptions.raise_from_response(response)


def _split(state: str) -> tuple[str, str]:
    """`("CREATE", "IN_PROGRESS")` of Heat's joined `CREATE_IN_PROGRESS` (one-word actions)."""
    action, _, status = state.partition("_")
    return action, status


def _timestamp(value: str | None) -> datetime:
    """Heat's event time (`2024-05-01T10:00:00Z`, sometimes without the zone) as UTC."""
    if not value:
        return datetime.fromtimestamp(0, UTC)
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


class HeatStackService:
    """Stacks of one project on OpenStack Heat; see `cellar.orchestration.stacks`."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    @classmethod
    def from_cloud(
        cls, cloud: str | None = None, *, session: Session | None = None, **config: Any
    ) -> HeatStackService:
        """A service on the cloud named in clouds.yaml (or `OS_*` variables when `cloud` is
        None), or on a keystoneauth `session`. `config` goes to openstacksdk as is, e.g.
        `region_name` or `orchestration_endpoint_override`."""
        if session is not None:
            return cls(Connection(session=session, **config))
        return cls(openstack.connect(cloud=cloud, **config))

    @property
    def _heat(self) -> Proxy:
        """The orchestration proxy (made on first use: no request before a call)."""
        return self.conn.orchestration

    def _stack(self, stack_id: str, *, outputs: bool = False) -> SdkStack:
        """The stack as Heat shows it (following its lookup redirect); `StackNotFound` for an
        unknown or deleted one. Outputs only when asked: Heat resolves every one of them
        (attributes of the cloud's resources) on each show that wants them."""
        with _heat_errors(stack_id):
            return self._heat.get_stack(stack_id, resolve_outputs=outputs)

    def create(
        self,
        name: str,
        template: Mapping[str, Any],
        parameters: Mapping[str, Any],
        *,
        disable_rollback: bool = False,
    ) -> str:
        # Heat's API defaults disable_rollback to true: always send it.
        with _heat_errors(None):
            stack = self._heat.create_stack(
                name=name,
                template=dict(template),
                parameters=dict(parameters),
                is_rollback_disabled=disable_rollback,
            )
        return str(stack.id)

    def update(
        self,
        stack_id: str,
        *,
        template: Mapping[str, Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> None:
        """A PATCH (Heat's `existing` update, implied by the method): only what is given
        is sent; Heat keeps the stored template and the other parameters' values."""
        stack = self._stack(stack_id)
        body: dict[str, Any] = {}
        if template is not None:
            body["template"] = dict(template)
        if parameters is not None:
            body["parameters"] = dict(parameters)
        with _heat_errors(stack_id):
            _raise_for(self._heat.patch(f"/stacks/{stack.name}/{stack.id}", json=body))

    def get(self, stack_id: str) -> Stack:
        """Outputs are left empty while an operation runs, as on the embedded engine: Heat
        shows them half-resolved then, and nobody should act on those."""
        stack = self._stack(stack_id, outputs=True)
        outputs: dict[str, Any] = {}
        if not str(stack.status).endswith("_IN_PROGRESS"):
            outputs = {o["output_key"]: o.get("output_value") for o in stack.outputs or []}
        return Stack(
            id=str(stack.id),
            name=str(stack.name),
            status=str(stack.status),
            status_reason=str(stack.status_reason or ""),
            outputs=outputs,
        )

    def find(self, name: str) -> Stack | None:
        """Heat answers a lookup by name (a redirect to the stack); a deleted one is gone."""
        try:
            return self.get(name)
        except StackNotFound:
            return None

    def template(self, stack_id: str) -> dict[str, Any]:
        stack = self._stack(stack_id)
        with _heat_errors(stack_id):
            response = self._heat.get(f"/stacks/{stack.name}/{stack.id}/template")
            _raise_for(response)
        template: dict[str, Any] = response.json()
        return template

    def resources(self, stack_id: str) -> list[StackResource]:
        return self._resources(self._stack(stack_id))

    def _resources(self, stack: SdkStack) -> list[StackResource]:
        with _heat_errors(str(stack.id)):
            return [
                StackResource(
                    name=str(r.name),
                    type=str(r.resource_type),
                    physical_id=r.physical_resource_id or None,
                    status=str(r.status),
                    status_reason=str(r.status_reason or ""),
                )
                for r in self._heat.resources(stack)
            ]

    def events(self, stack_id: str) -> list[StackEvent]:
        """Oldest first (asked for: Heat's order is its database's default otherwise).
        Heat's event summaries carry no resource type: it comes from the resource list,
        as on the embedded engine (empty for the stack's own events)."""
        stack = self._stack(stack_id)
        types = {r.name: r.type for r in self._resources(stack)}
        with _heat_errors(stack_id):
            events = list(self._heat.stack_events(stack, sort_dir="asc"))
        result = []
        for e in events:
            action, status = _split(str(e.resource_status or ""))
            result.append(
                StackEvent(
                    id=str(e.id),
                    resource_name=str(e.resource_name),
                    physical_id=e.physical_resource_id or None,
                    action=action,
                    status=status,
                    reason=str(e.resource_status_reason or ""),
                    timestamp=_timestamp(e.event_time),
                    resource_type=types.get(str(e.resource_name), ""),
                )
            )
        return result

    def signal(self, stack_id: str, resource_name: str, data: Mapping[str, Any]) -> None:
        """Heat's `POST .../resources/{name}/signal`, as the stack's owner.

        A reboot (`{"action": "reboot"}`) is refused before anything is sent: Heat's
        `OS::Nova::Server` takes no signal at all, so the caller must reboot the server
        through compute (the orchestrator does, on this `SignalNotSupported`)."""
        if data.get("action") == REBOOT:
            raise SignalNotSupported(
                f"Heat does not reboot servers on a signal ({resource_name!r} of stack "
                f"{stack_id}): reboot the server through the compute service",
                stack_id=stack_id,
            )
        stack = self._stack(stack_id)
        path = f"/stacks/{stack.name}/{stack.id}/resources/{quote(resource_name, safe='')}"
        # The stack exists: a 404 now is about the resource, a StackError.
        with _heat_errors(stack_id, missing_is_stack=False):
            _raise_for(self._heat.post(f"{path}/signal", json=dict(data)))

    def delete(self, stack_id: str) -> None:
        stack = self._stack(stack_id)
        with _heat_errors(stack_id):
            self._heat.delete_stack(stack, ignore_missing=False)
