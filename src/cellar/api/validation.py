"""Pydantic's validation errors, told as `BadRequest`s that name the field at fault.

`instance.volume.size: must be an integer between 1 and 1000`, never a 422 with a list
of locations. Only the first error is told: it is the one a client fixes first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from cellar.domain.errors import BadRequest

M = TypeVar("M", bound=BaseModel)

# Where FastAPI found the value; not part of the field's name.
_SOURCES = frozenset({"body", "query", "path", "header", "cookie"})


def _message(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    simple = {
        "missing": "is required",
        "extra_forbidden": "is not an accepted field",
        "string_type": "must be a string",
        "int_type": "must be an integer",
        "int_parsing": "must be an integer",
        "int_from_float": "must be an integer",
        "bool_type": "must be true or false",
        "bool_parsing": "must be true or false",
        "list_type": "must be a list",
        "dict_type": "must be an object",
        "model_type": "must be an object",
        "model_attributes_type": "must be an object",
        "json_invalid": "is not valid JSON",
        "json_type": "is not valid JSON",
    }
    if kind in simple:
        return simple[kind]
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return "must not be empty" if n == 1 else f"must be at least {n} characters long"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters long"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} items"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}"
    message = str(error.get("msg", "is not valid"))
    return message.removeprefix("Value error, ")


def field_name(loc: Sequence[Any], prefix: str = "") -> str:
    """`("body", "instance", "users", 0, "name")` -> `instance.users[0].name`."""
    parts = list(loc)
    if parts and parts[0] in _SOURCES:
        parts = parts[1:]
    name = prefix
    for part in parts:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name = f"{name}.{part}" if name else str(part)
    return name or "body"


def bad_request_from(errors: Sequence[Any], prefix: str = "") -> BadRequest:
    if not errors:
        return BadRequest(prefix or "body", "is not valid")
    first: Mapping[str, Any] = errors[0]
    loc = first.get("loc", ())
    if first.get("type") in ("json_invalid", "json_type"):
        return BadRequest("body", "is not valid JSON")
    return BadRequest(field_name(loc, prefix), _message(first))


def parse(model: type[M], data: Any, prefix: str) -> M:
    """Validate `data` as `model`; a failure is a BadRequest naming `prefix.field`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise bad_request_from(exc.errors(), prefix) from None
