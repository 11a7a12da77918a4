"""Who is asking: the `X-Auth-Token` header, resolved to a project and an admin flag.

A token acts in its own project's path (`/v1.0/{tenant_id}/...`); another project's
path is 403 unless the token is an admin's. Instances of other projects are 404 to
non-admins (`RequestContext.scope`), so their existence is not disclosed. Admins may
list every project's instances with `GET /instances?all_projects=true`; for anyone else
that query is 403 rather than silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header

from cellar.api.deps import State
from cellar.db.engine import transaction
from cellar.db.tokens import resolve_token
from cellar.domain.errors import Forbidden, Unauthorized


@dataclass(frozen=True)
class RequestContext:
    project_id: str
    is_admin: bool
    # The project named in the path: what is created or listed belongs to it.
    tenant_id: str

    @property
    def scope(self) -> str | None:
        """The project a lookup is limited to: None (every project) for admins."""
        return None if self.is_admin else self.project_id


def authenticate(
    tenant_id: str,
    state: State,
    x_auth_token: Annotated[str | None, Header()] = None,
) -> RequestContext:
    if not x_auth_token:
        raise Unauthorized("This request needs an X-Auth-Token header.")
    with transaction(state.sessions) as session:
        project_id, is_admin = resolve_token(session, token=x_auth_token)
    if not is_admin and tenant_id != project_id:
        raise Forbidden(f"The token's project may not act in project {tenant_id}.")
    return RequestContext(project_id=project_id, is_admin=is_admin, tenant_id=tenant_id)


Ctx = Annotated[RequestContext, Depends(authenticate)]
