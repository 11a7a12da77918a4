"""API tokens: only a token's sha256 is stored; the plaintext is shown once, at issue.

A token expires (`ttl_s` after its issue; a day by default) and can be revoked (its row
deleted): either way the next request that carries it gets 401.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from cellar.db.instances import utcnow
from cellar.db.models import Token
from cellar.domain.errors import Unauthorized

DEFAULT_TTL_S = 86400.0


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    session: Session, *, project_id: str, is_admin: bool = False, ttl_s: float = DEFAULT_TTL_S
) -> str:
    """A new token for `project_id`, valid `ttl_s` seconds; returns the plaintext (stored
    only as its hash)."""
    if not project_id:
        raise ValueError("project_id must not be empty")
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        Token(
            token_hash=_digest(token),
            project_id=project_id,
            is_admin=is_admin,
            created=now,
            expires=now + timedelta(seconds=ttl_s),
        )
    )
    session.flush()
    return token


def resolve_token(session: Session, *, token: str) -> tuple[str, bool]:
    """`(project_id, is_admin)` of a token; Unauthorized if it is unknown, revoked or
    expired."""
    row = session.get(Token, _digest(token)) if token else None
    if row is None:
        raise Unauthorized("The token is not valid.")
    if row.expires <= utcnow():
        raise Unauthorized("The token has expired.")
    return row.project_id, row.is_admin


def revoke_token(session: Session, *, token: str) -> bool:
    """Forget a token; False if it was not known."""
    result = session.execute(delete(Token).where(Token.token_hash == _digest(token)))
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]
