"""Flavors, datastores and datastore versions (seeded by migration 0002)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from api.helpers import Api, fault_of
from cellar.db import catalog
from cellar.db.engine import transaction
from cellar.db.models import DatastoreVersion

POSTGRESQL = "8f7c3b1e-0c5e-4c55-9d8e-5f0a3a3d1001"
POSTGRESQL_15 = "8f7c3b1e-0c5e-4c55-9d8e-5f0a3a3d1015"


def test_flavors_list_and_show(api: Api) -> None:
    flavors = api.get("/flavors").json()["flavors"]
    assert [f["name"] for f in flavors] == ["m1.tiny", "m1.small", "m1.medium", "m1.large"]
    small = api.get("/flavors/2").json()["flavor"]
    assert {k: small[k] for k in ("id", "str_id", "name", "ram", "vcpus")} == {
        "id": 2,
        "str_id": "2",
        "name": "m1.small",
        "ram": 1024,
        "vcpus": 1,
    }
    assert small["links"][0] == {"href": "http://testserver/v1.0/p1/flavors/2", "rel": "self"}


def test_the_flavors_of_a_datastore_version(api: Api) -> None:
    flavors = api.get(f"/datastores/postgresql/versions/{POSTGRESQL_15}/flavors").json()
    assert [f["str_id"] for f in flavors["flavors"]] == ["1", "2", "3", "4"]
    fault_of(api.get("/datastores/postgresql/versions/9/flavors"), "itemNotFound", 404)


def test_unknown_flavor_is_404(api: Api) -> None:
    assert "Flavor 99" in fault_of(api.get("/flavors/99"), "itemNotFound", 404)


def test_datastore_by_id_or_name(api: Api) -> None:
    (listed,) = api.get("/datastores").json()["datastores"]
    by_name = api.get("/datastores/postgresql").json()["datastore"]
    by_id = api.get(f"/datastores/{POSTGRESQL}").json()["datastore"]
    assert listed == by_name == by_id
    assert by_id["default_version"] == POSTGRESQL_15
    assert [v["name"] for v in by_id["versions"]] == ["15"]
    fault_of(api.get("/datastores/mysql"), "itemNotFound", 404)


def test_versions_by_id_or_name(api: Api, sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        session.add(
            DatastoreVersion(
                id="v16",
                datastore_id=POSTGRESQL,
                name="16",
                manager="postgresql",
                image="postgresql-16",
                ports="5432",
                active=False,
            )
        )
    versions = api.get("/datastores/postgresql/versions").json()["versions"]
    assert [(v["name"], v["active"]) for v in versions] == [("15", True), ("16", False)]
    assert api.get("/datastores/postgresql/versions/15").json()["version"]["id"] == POSTGRESQL_15
    shown = api.get(f"/datastores/{POSTGRESQL}/versions/v16").json()["version"]
    assert (shown["name"], shown["version"], shown["image"], shown["datastore"]) == (
        "16",
        "16",
        "postgresql-16",
        POSTGRESQL,
    )
    # Inactive versions are not offered in the datastore's summary.
    assert [
        v["name"] for v in api.get("/datastores/postgresql").json()["datastore"]["versions"]
    ] == ["15"]
    fault_of(api.get("/datastores/postgresql/versions/9"), "itemNotFound", 404)


def test_version_labels_and_ports(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        assert catalog.version_labels(session, version_ids=[POSTGRESQL_15, "nope"]) == {
            POSTGRESQL_15: ("postgresql", "15")
        }
        assert catalog.version_labels(session, version_ids=[]) == {}
        version = catalog.get_version_by_id(session, version_id=POSTGRESQL_15)
        assert catalog.version_ports(version) == (5432,)
