"""Views of flavors, datastores and datastore versions."""

from __future__ import annotations

from cellar.api.views.common import Link, Linker, View, omitted_if_none
from cellar.db.models import Datastore, DatastoreVersion, Flavor


class FlavorView(View):
    """Trove's flavor view: `id` is an integer when the flavor's id is one (without a
    leading zero) and null otherwise, `str_id` always the id as a string (python-troveclient
    falls back to it). Servers here have no root or ephemeral disk of the flavor's: the
    data lives on the instance's volume, so `disk` and `ephemeral` are 0."""

    id: int | None
    str_id: str
    name: str
    ram: int
    vcpus: int
    disk: int = 0
    ephemeral: int = 0
    links: list[Link]


def trove_flavor_id(flavor_id: str) -> int | None:
    if flavor_id.isascii() and flavor_id.isdigit() and not flavor_id.startswith("0"):
        return int(flavor_id)
    return None


def flavor_view(row: Flavor, tenant_id: str, linker: Linker) -> FlavorView:
    return FlavorView(
        id=trove_flavor_id(row.id),
        str_id=row.id,
        name=row.name,
        ram=row.ram_mb,
        vcpus=row.vcpus,
        links=linker.links(tenant_id, "flavors", row.id),
    )


class VersionSummary(View):
    id: str
    name: str
    links: list[Link]


class DatastoreView(View):
    id: str
    name: str
    links: list[Link]
    default_version: str | None = omitted_if_none()
    versions: list[VersionSummary]


class VersionView(View):
    id: str
    name: str
    # Trove's version number (`datastore version list` shows it); a version's name here.
    version: str
    datastore: str
    image: str
    active: bool
    links: list[Link]


def datastore_view(
    row: Datastore, versions: list[DatastoreVersion], tenant_id: str, linker: Linker
) -> DatastoreView:
    return DatastoreView(
        id=row.id,
        name=row.name,
        links=linker.links(tenant_id, "datastores", row.id),
        default_version=row.default_version_id,
        versions=[
            VersionSummary(
                id=v.id,
                name=v.name,
                links=linker.links(tenant_id, f"datastores/{row.id}/versions", v.id),
            )
            for v in versions
        ],
    )


def version_view(row: DatastoreVersion, tenant_id: str, linker: Linker) -> VersionView:
    return VersionView(
        id=row.id,
        name=row.name,
        version=row.name,
        datastore=row.datastore_id,
        image=row.image,
        active=row.active,
        links=linker.links(tenant_id, f"datastores/{row.datastore_id}/versions", row.id),
    )
