"""Persistence of the catalog: flavors, datastores and datastore versions."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cellar.db.models import Datastore, DatastoreVersion, Flavor
from cellar.domain.errors import NotFound
from cellar.domain.specs import FlavorSpec


def list_flavors(session: Session) -> list[Flavor]:
    return list(session.scalars(select(Flavor).order_by(Flavor.ram_mb, Flavor.id)))


def get_flavor(session: Session, *, flavor_id: str) -> Flavor:
    row = session.get(Flavor, flavor_id)
    if row is None:
        raise NotFound("Flavor", flavor_id)
    return row


def flavor_spec(flavor: Flavor) -> FlavorSpec:
    return FlavorSpec(id=flavor.id, name=flavor.name, ram_mb=flavor.ram_mb, vcpus=flavor.vcpus)


def list_datastores(session: Session) -> list[Datastore]:
    return list(session.scalars(select(Datastore).order_by(Datastore.name)))


def get_datastore(session: Session, *, id_or_name: str) -> Datastore:
    """The datastore with this id, or else this name; NotFound otherwise."""
    row = session.scalars(
        select(Datastore)
        .where(or_(Datastore.id == id_or_name, Datastore.name == id_or_name))
        .order_by((Datastore.id == id_or_name).desc())
    ).first()
    if row is None:
        raise NotFound("Datastore", id_or_name)
    return row


def list_versions(
    session: Session, *, datastore_id: str, active_only: bool = False
) -> list[DatastoreVersion]:
    query = select(DatastoreVersion).where(DatastoreVersion.datastore_id == datastore_id)
    if active_only:
        query = query.where(DatastoreVersion.active.is_(True))
    return list(session.scalars(query.order_by(DatastoreVersion.name)))


def get_version(session: Session, *, datastore_id: str, id_or_name: str) -> DatastoreVersion:
    """A version of that datastore, by id or else by name; NotFound otherwise."""
    row = session.scalars(
        select(DatastoreVersion)
        .where(
            DatastoreVersion.datastore_id == datastore_id,
            or_(DatastoreVersion.id == id_or_name, DatastoreVersion.name == id_or_name),
        )
        .order_by((DatastoreVersion.id == id_or_name).desc())
    ).first()
    if row is None:
        raise NotFound("Datastore version", id_or_name)
    return row


def get_version_by_id(session: Session, *, version_id: str) -> DatastoreVersion:
    row = session.get(DatastoreVersion, version_id)
    if row is None:
        raise NotFound("Datastore version", version_id)
    return row


def version_labels(session: Session, *, version_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """`{version id: (datastore name, version name)}` for the given versions, in one query."""
    ids = set(version_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(DatastoreVersion.id, Datastore.name, DatastoreVersion.name)
        .join(Datastore, Datastore.id == DatastoreVersion.datastore_id)
        .where(DatastoreVersion.id.in_(ids))
    )
    return {vid: (ds_name, v_name) for vid, ds_name, v_name in rows}


def version_ports(version: DatastoreVersion) -> tuple[int, ...]:
    """The TCP ports of a version (the `ports` column is comma-separated)."""
    return tuple(int(p) for p in version.ports.split(",") if p.strip())
