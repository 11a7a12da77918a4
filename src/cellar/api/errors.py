"""The one place where errors become HTTP responses (Trove's fault bodies).

Every `CellarError` family maps to one status and one body key, e.g.
`{"badRequest": {"code": 400, "message": "instance.volume.size: ..."}}`. FastAPI's
validation errors become 400 naming the field (422 means "the instance's state refuses
this action"). Anything unexpected is logged and answered with a generic 500.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from cellar.api.validation import bad_request_from
from cellar.domain.errors import (
    BadRequest,
    CellarError,
    Conflict,
    Forbidden,
    NotFound,
    OperationIsNotSupported,
    OverLimit,
    TransientError,
    Unauthorized,
    UnprocessableEntity,
)

log = logging.getLogger(__name__)

# Trove's fault names (`trove/common/wsgi.py`), by status.
FAULT_NAMES: dict[int, str] = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    422: "unprocessableEntity",
    500: "instanceFault",
    501: "notImplemented",
    503: "serviceUnavailable",
}

# Most specific first: the first family an error belongs to decides its status.
STATUS_OF: tuple[tuple[type[CellarError], int], ...] = (
    (BadRequest, 400),
    (Unauthorized, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (OverLimit, 413),
    (UnprocessableEntity, 422),
    (OperationIsNotSupported, 501),
    (TransientError, 503),
)

GENERIC_500 = "The server has either erred or is incapable of performing the requested operation."


def status_of(error: CellarError) -> int:
    for family, status in STATUS_OF:
        if isinstance(error, family):
            return status
    return 500


def fault(status: int, message: str) -> JSONResponse:
    name = FAULT_NAMES.get(status, "instanceFault")
    headers = {"WWW-Authenticate": 'Token realm="cellar"'} if status == 401 else None
    return JSONResponse(
        {name: {"code": status, "message": message}}, status_code=status, headers=headers
    )


async def _cellar_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CellarError)
    status = status_of(exc)
    if status == 500:
        log.error("unmapped error on %s %s", request.method, request.url.path, exc_info=exc)
        return fault(500, GENERIC_500)
    return fault(status, exc.message)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return fault(400, bad_request_from(exc.errors()).message)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return fault(404, f"The resource {request.url.path} could not be found.")
    if exc.status_code == 405:
        return fault(405, f"{request.method} is not allowed on {request.url.path}.")
    return fault(exc.status_code, str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return fault(500, GENERIC_500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CellarError, _cellar_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
