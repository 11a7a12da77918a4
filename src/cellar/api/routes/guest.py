"""The guest endpoint: what the agents inside the servers send (no token; the secret).

`POST /guest/v1/instances/{id}/heartbeat` {"service_status", "sent"} with the instance's
secret in `X-Cellar-Guest-Secret` (HMAC-SHA256 of the id under the control plane's guest
key, checked without any stored state). A wrong or missing secret is 401; an unknown
instance 404; an unknown status 400. The answer says whether the heartbeat was taken or
dropped as older than the last one (`db.heartbeats`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from pydantic import BaseModel

from cellar.api.deps import State
from cellar.db import heartbeats
from cellar.db.engine import transaction
from cellar.domain.errors import BadRequest, Unauthorized
from cellar.domain.status import ServiceStatus
from cellar.guest.protocol import KEY_FILE, SECRET_HEADER, read_key, secret_matches

router = APIRouter(prefix="/guest/v1", tags=["guest"])


class Heartbeat(BaseModel):
    service_status: str
    sent: float


class HeartbeatAck(BaseModel):
    accepted: bool


@router.post("/instances/{instance_id}/heartbeat")
def heartbeat(
    instance_id: str,
    body: Heartbeat,
    state: State,
    secret: Annotated[str | None, Header(alias=SECRET_HEADER)] = None,
) -> HeartbeatAck:
    key = read_key(state.settings.state_dir / KEY_FILE)
    if not secret_matches(key, instance_id, secret):
        raise Unauthorized(f"This request needs the instance's {SECRET_HEADER} header.")
    try:
        status = ServiceStatus(body.service_status)
    except ValueError:
        raise BadRequest(
            "service_status", f"{body.service_status!r} is not a service status"
        ) from None
    with transaction(state.sessions) as session:
        accepted = heartbeats.record_heartbeat(
            session, instance_id=instance_id, status=status, sent=body.sent
        )
    return HeartbeatAck(accepted=accepted)
