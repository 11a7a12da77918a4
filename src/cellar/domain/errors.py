"""The error tree of cellar.

Every error a user can see is a `CellarError`; the API maps each family to one HTTP
status in one place (`cellar.api.errors`). Nothing below the API knows about HTTP.

Two kinds of failure are told apart (kopf's habit): a `TransientError` may succeed
when retried after a delay; everything else is permanent and is recorded as a fault.
"""

from __future__ import annotations


class CellarError(Exception):
    """Base of every error cellar raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TransientError(CellarError):
    """A temporary failure: the same call may succeed after a delay."""


class NotFound(CellarError):
    """A resource the caller named does not exist (or is not theirs to see)."""

    def __init__(self, kind: str, resource_id: str) -> None:
        super().__init__(f"{kind} {resource_id} could not be found.")
        self.kind = kind
        self.resource_id = resource_id


class BadRequest(CellarError):
    """The request is malformed; `field` names the part at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class Unauthorized(CellarError):
    """No valid token."""


class Forbidden(CellarError):
    """A valid token that may not do this."""


class Conflict(CellarError):
    """Another operation got there first (a lost race); retrying later may work."""


class UnprocessableEntity(CellarError):
    """The request is well formed but the resource's state refuses it (Trove's 422)."""


class InvalidTransition(UnprocessableEntity):
    """A lifecycle change that the transition rules do not allow."""

    def __init__(self, what: str, current: str, target: str) -> None:
        super().__init__(f"{what} cannot go from {current} to {target}.")
        self.current = current
        self.target = target


class OperationIsNotSupported(CellarError):
    """The chosen resource manager does not implement this operation (HTTP 501)."""

    def __init__(self, operation: str, manager: str) -> None:
        super().__init__(
            f"Operation {operation!r} is not supported by the {manager!r} resource manager."
        )
        self.operation = operation
        self.manager = manager


class OverLimit(CellarError):
    """The request would take the caller past a limit (Trove's 413, `overLimit`)."""


class QuotaExceeded(OverLimit):
    """Trove's `QuotaExceeded`: the resources over their project's quota, sorted."""

    def __init__(self, overs: list[str]) -> None:
        super().__init__(f"Quota exceeded for resources: {sorted(overs)}.")
        self.overs = sorted(overs)
