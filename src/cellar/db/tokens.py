"""API tokens: only a token's sha256 is stored; the plaintext is shown once, at issue."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import delete
from sqlalchemy.orm import Session

from cellar.db.instances import utcnow
from cellar.db.models import Token
from cellar.domain.errors import Unauthorized


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, *, project_id: str, is_admin: bool = False) -> str:
    """A new token for `project_id`; returns the plaintext (stored only as its hash)."""
    if not project_id:
        raise ValueError("project_id must not be empty")
    token = secrets.token_urlsafe(32)
    session.add(
        Token(token_hash=_digest(token), project_id=project_id, is_admin=is_admin, created=utcnow())
    )
    session.flush()
    return token


def resolve_token(session: Session, *, token: str) -> tuple[str, bool]:
    """`(project_id, is_admin)` of a token; Unauthorized if it is unknown."""
    row = session.get(Token, _digest(token)) if token else None
    if row is None:
        raise Unauthorized("The token is not valid.")
    return row.project_id, row.is_admin


def revoke_token(session: Session, *, token: str) -> bool:
    """Forget a token; False if it was not known."""
    result = session.execute(delete(Token).where(Token.token_hash == _digest(token)))
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]
