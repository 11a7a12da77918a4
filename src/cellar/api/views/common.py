"""The shared pieces of every view: the base model, links and times."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, SerializerFunctionWrapHandler, model_serializer

API_VERSION = "v1.0"


class View(BaseModel):
    """A response model; keys in `omit_if_none` are left out when None (Trove's habit)."""

    omit_if_none: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if not (k in self.omit_if_none and v is None)}


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
