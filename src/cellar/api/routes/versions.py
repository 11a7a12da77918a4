"""`GET /`: the API versions (no token needed)."""

from __future__ import annotations

from fastapi import APIRouter

from cellar.api.deps import Links
from cellar.api.views.common import API_VERSION, Link, View

router = APIRouter(tags=["versions"])


class VersionInfo(View):
    id: str
    status: str
    updated: str
    links: list[Link]


class Versions(View):
    versions: list[VersionInfo]


@router.get("/")
def list_versions(linker: Links) -> Versions:
    href = f"{linker.base_url.rstrip('/')}/{API_VERSION}/"
    return Versions(
        versions=[
            VersionInfo(
                id=API_VERSION,
                status="CURRENT",
                updated="2012-08-01T00:00:00Z",
                links=[Link(href=href, rel="self")],
            )
        ]
    )
