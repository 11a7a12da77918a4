"""Views of flavors, datastores and datastore versions."""

from __future__ import annotations

from cellar.api.views.common import Link, Linker, View, omitted_if_none
from cellar.db.models import Datastore, DatastoreVersion, Flavor


class FlavorView(View):
    id: str
    str_id: str
    name: str
    ram: int
    vcpus: int
    links: list[Link]


def flavor_view(row: Flavor, tenant_id: str, linker: Linker) -> FlavorView:
    return FlavorView(
        id=row.id,
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
        datastore=row.datastore_id,
        image=row.image,
        active=row.active,
        links=linker.links(tenant_id, f"datastores/{row.datastore_id}/versions", row.id),
    )
