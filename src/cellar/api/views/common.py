"""The shared pieces of every view: the base model, links and times."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

API_VERSION = "v1.0"


class View(BaseModel):
    """A response model."""


def _is_none(value: Any) -> bool:
    return value is None


def omitted_if_none() -> Any:
    """A field left out of the response when None (Trove's habit for `fault`, `links`)."""
    return Field(default=None, exclude_if=_is_none)


class Link(View):
    href: str
    rel: str


@dataclass(frozen=True)
class Linker:
    """Builds Trove's `self` and `bookmark` links from the request's base URL."""

    base_url: str

    def links(self, tenant_id: str, path: str, resource_id: str) -> list[Link]:
        base = self.base_url.rstrip("/")
        return [
            Link(href=f"{base}/{API_VERSION}/{tenant_id}/{path}/{resource_id}", rel="self"),
            Link(href=f"{base}/{tenant_id}/{path}/{resource_id}", rel="bookmark"),
        ]

    def url(self, tenant_id: str, path: str) -> str:
        return f"{self.base_url.rstrip('/')}/{API_VERSION}/{tenant_id}/{path}"


def isotime(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S") if value is not None else None
