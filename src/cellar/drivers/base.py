"""What every driver shares: the error roots and the unsupported-operation failure."""

from __future__ import annotations

from cellar.domain.errors import CellarError, NotFound, TransientError


class DriverError(CellarError):
    """A permanent failure reported by a cloud service."""


class ServiceUnavailable(TransientError):
    """The service could not be reached or was overloaded: retry after a delay."""


class ResourceNotFound(NotFound):
    """A cloud resource that does not exist (any service)."""


class InvalidRequest(DriverError):
    """The service refused the request as invalid (a real service would answer 400)."""


class DriverOperationNotSupported(DriverError):
    """This driver does not implement the operation; the message names it."""

    def __init__(self, driver: str, operation: str) -> None:
        super().__init__(f"The {driver} driver does not support {operation}.")
        self.operation = operation
