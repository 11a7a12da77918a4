"""The signal endpoint of the embedded stack engine's wait condition handles.

`POST /orchestration/v1/stacks/{stack_id}/resources/{name}/signal` with the handle's token
in `X-Auth-Token` and a body `{status, reason, data, id}` (Heat's token signal: what the
handle's `endpoint` attribute and `curl_cli` give). The guest agent posts it when its
datastore is ready. The engine runs inside a task manager, not here: the signal is stored
in the database (`DbSignalStore`), where the wait condition sees it at its next poll.

A wrong or missing token is 401; an unknown stack or resource 404; a resource that is not a
handle, or is being deleted, or a body with other keys or another status, 400 naming the
field. The answer is 200 with no body, as Heat's.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Response

from cellar.api.deps import State
from cellar.db.engine import transaction
from cellar.db.stacks import DbSignalStore, DbStackStore, current_resource
from cellar.domain.errors import BadRequest, Unauthorized
from cellar.orchestration.local.cloud_base import SignalRefused, signal_body
from cellar.orchestration.local.service import SIGNAL_PATH
from cellar.orchestration.local.wait_condition import WaitConditionHandle, token_matches

router = APIRouter(tags=["orchestration"])

# Heat refuses signals to resources in these actions (Resource.no_signal_actions).
NO_SIGNAL_ACTIONS = ("SUSPEND", "DELETE")


@router.post(SIGNAL_PATH)
def signal(
    stack_id: str,
    resource_name: str,
    state: State,
    body: Annotated[dict[str, Any] | None, Body()] = None,
    token: Annotated[str | None, Header(alias="X-Auth-Token")] = None,
) -> Response:
    with transaction(state.sessions, readonly=True) as session:
        handle = current_resource(session, stack_id, resource_name)
    if handle.type != WaitConditionHandle.type_name:
        raise BadRequest(
            "resource_name",
            f"{resource_name} is a {handle.type}; only a "
            f"{WaitConditionHandle.type_name} takes token signals.",
        )
    if not token_matches(handle.data, token):
        raise Unauthorized("This signal needs the handle's token in X-Auth-Token.")
    if handle.action in NO_SIGNAL_ACTIONS or not handle.physical_id:
        raise BadRequest("resource_name", f"{resource_name} is {handle.state} and takes no signal.")
    try:
        details = signal_body(body or {})
    except SignalRefused as exc:
        raise BadRequest(exc.field, str(exc)) from None
    DbSignalStore(state.sessions).add(handle.physical_id, details)
    # The event the engine records for a signal it takes itself (`StackEngine.signal`).
    DbStackStore(state.sessions).add_event(
        stack_id,
        resource_name,
        handle.physical_id,
        "SIGNAL",
        "COMPLETE",
        str(details.get("reason") or "Signal received"),
    )
    return Response(status_code=200)
