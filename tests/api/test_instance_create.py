"""POST /instances: one transaction writes the row, its security group and rules, and
exactly one provision job; bad input is a 400 naming the field and writes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from api.helpers import Api, create, create_body, fault_of, jobs
from cellar.config import Settings
from cellar.db.engine import transaction
from cellar.db.models import (
    Datastore,
    DatastoreVersion,
    Instance,
    Job,
    SecurityGroup,
    SecurityGroupRule,
)
from cellar.db.sealing import unseal
from cellar.domain.specs import FlavorSpec, spec_from_dict

POSTGRESQL = "8f7c3b1e-0c5e-4c55-9d8e-5f0a3a3d1001"


def counts(sessions: sessionmaker[Session]) -> dict[str, int]:
    with transaction(sessions) as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Instance, SecurityGroup, SecurityGroupRule, Job)
        }


def test_create_answers_200_with_a_build_view(api: Api) -> None:
    view = create(api, name="orders")
    assert view["status"] == "BUILD"
    assert view["task"] == "BUILDING"
    assert view["name"] == "orders"
    assert view["flavor"]["id"] == "2"
    assert view["datastore"] == {"type": "postgresql", "version": "15"}
    assert view["volume"] == {"size": 2}
    assert view["ip"] == []
    assert view["hostname"] == f"cellar-{view['id']}.db.test"
    assert view["access"] == {"is_public": False, "allowed_cidrs": ["0.0.0.0/0"]}
    assert view["provisioning_engine"] == "native"
    assert view["stack_id"] is None
    assert "fault" not in view
    assert view["links"][0]["href"] == f"http://testserver/v1.0/p1/instances/{view['id']}"
    assert api.get(f"/instances/{view['id']}").json()["instance"] == view


def test_create_writes_row_group_rules_and_one_job(
    api: Api, sessions: sessionmaker[Session], settings: Settings
) -> None:
    body = create_body(
        databases=[{"name": "orders"}],
        users=[{"name": "app", "password": "s3cret", "databases": [{"name": "orders"}]}],
        access={"allowed_cidrs": ["10.0.0.0/24", "192.168.1.7"], "is_public": True},
    )
    view = api.post("/instances", json=body).json()["instance"]
    iid = view["id"]
    assert counts(sessions) == {
        "instances": 1,
        "security_groups": 1,
        "security_group_rules": 2,
        "jobs": 1,
    }
    with transaction(sessions) as session:
        row = session.get(Instance, iid)
        assert row is not None
        assert (row.tenant_id, row.task_status, row.service_status) == ("p1", "BUILDING", "NEW")
        assert row.provisioning_engine == "native"
        assert row.hostname == f"cellar-{iid}.db.test"
        (group,) = session.scalars(select(SecurityGroup))
        assert (group.name, group.instance_id, group.tenant_id) == (f"cellar-{iid}", iid, "p1")
        rules = session.scalars(select(SecurityGroupRule).order_by(SecurityGroupRule.cidr))
        assert [(r.group_id, r.protocol, r.from_port, r.to_port, r.cidr) for r in rules] == [
            (group.id, "tcp", 5432, 5432, "10.0.0.0/24"),
            (group.id, "tcp", 5432, 5432, "192.168.1.7/32"),
        ]
    (job,) = jobs(sessions)
    assert (job.kind, job.instance_id, job.state) == ("provision_instance", iid, "queued")
    spec = spec_from_dict(job.args["spec"])
    assert spec.instance_id == iid
    assert spec.project_id == "p1"
    assert spec.flavor == FlavorSpec(id="2", name="m1.small", ram_mb=1024, vcpus=1)
    assert (spec.volume_size_gb, spec.datastore, spec.datastore_version) == (2, "postgresql", "15")
    assert (spec.image, spec.ports, spec.dns_zone) == ("postgresql-15", (5432,), "db.test")
    assert spec.allowed_cidrs == ("10.0.0.0/24", "192.168.1.7/32")
    assert [d.name for d in spec.databases] == ["orders"]
    # The user's password is kept only sealed, with a key outside the database.
    assert [(u.name, u.password, u.databases) for u in spec.users] == [("app", "", ("orders",))]
    assert "s3cret" not in json.dumps(job.args)
    assert unseal(settings.secret_key_path, job.args["sealed"]) == {"passwords": ["s3cret"]}
    assert settings.secret_key_path.stat().st_mode & 0o777 == 0o600
    assert spec.hostname == view["hostname"]


def test_rules_are_every_cidr_times_every_port(api: Api, sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        session.add(Datastore(id="ds2", name="pgpool", default_version_id="ds2v1"))
        session.flush()
        session.add(
            DatastoreVersion(
                id="ds2v1",
                datastore_id="ds2",
                name="4",
                manager="pgpool",
                image="pgpool-4",
                ports="5432,9999",
                active=True,
            )
        )
    view = create(
        api, datastore={"type": "pgpool"}, access={"allowed_cidrs": ["10.0.0.0/8", "::/0"]}
    )
    assert view["datastore"] == {"type": "pgpool", "version": "4"}
    with transaction(sessions) as session:
        rules = {(r.cidr, r.from_port) for r in session.scalars(select(SecurityGroupRule))}
    assert rules == {("10.0.0.0/8", 5432), ("10.0.0.0/8", 9999), ("::/0", 5432), ("::/0", 9999)}


def test_datastore_and_version_by_id_or_name(api: Api) -> None:
    by_name = create(api, datastore={"type": "postgresql", "version": "15"})
    by_id = create(api, datastore={"type": POSTGRESQL, "version_number": "15"})
    assert by_name["datastore"] == by_id["datastore"] == {"type": "postgresql", "version": "15"}


def test_volume_type_null_is_accepted_as_the_openstack_cli_sends_it(api: Api) -> None:
    assert create(api, volume={"size": 3, "type": None})["volume"] == {"size": 3}


def test_flavor_ref_may_be_an_integer_or_a_link(api: Api) -> None:
    assert create(api, flavorRef=3)["flavor"]["id"] == "3"
    assert create(api, flavorRef="http://x/v1.0/p1/flavors/4")["flavor"]["id"] == "4"


BAD_INPUT: list[tuple[Any, str, str]] = [
    ({}, "instance", "is required"),
    ({"instance": []}, "instance", "must be an object"),
    ({"instance": {"flavorRef": "2", "volume": {"size": 1}}}, "instance.name", "is required"),
    (create_body(name=""), "instance.name", "must not be empty"),
    (create_body(name=7), "instance.name", "must be a string"),
    (create_body(flavorRef=None), "instance.flavorRef", "is required (unless replica_of"),
    (create_body(flavorRef="99"), "instance.flavorRef", "flavor '99' does not exist"),
    (create_body(volume=None), "instance.volume", "is required (unless replica_of"),
    (create_body(volume=[]), "instance.volume", "must be an object"),
    (create_body(volume={}), "instance.volume.size", "is required"),
    (create_body(volume={"size": 0}), "instance.volume.size", "between 1 and 1000"),
    (create_body(volume={"size": 1001}), "instance.volume.size", "between 1 and 1000"),
    (create_body(volume={"size": "x"}), "instance.volume.size", "must be an integer"),
    (create_body(volume={"size": 1.5}), "instance.volume.size", "must be an integer"),
    (create_body(volume={"size": True}), "instance.volume.size", "must be an integer"),
    (create_body(volume={"size": 1, "type": "ssd"}), "instance.volume.type", "'ssd' does not"),
    (create_body(replica_of="x"), "instance.replica_of", "no instance 'x'"),
    (create_body(datastore={"type": "mysql"}), "instance.datastore.type", "'mysql' does not"),
    (create_body(datastore={"version": "9"}), "instance.datastore.version", "no version '9'"),
    (create_body(datastore={"type": "a b"}), "instance.datastore.type", "letters, digits"),
    (
        create_body(datastore={"version": "15", "version_number": "14"}),
        "instance.datastore.version_number",
        "'15' of 'postgresql' is not '14'",
    ),
    (create_body(databases=[{"name": "1x"}]), "instance.databases[0].name", "must start"),
    (create_body(databases="db"), "instance.databases", "must be a list"),
    (
        create_body(databases=[{"name": "a"}, {"name": "a"}]),
        "instance.databases",
        "database 'a' is given twice",
    ),
    (create_body(users=[{"name": "u"}]), "instance.users[0].password", "is required"),
    (
        create_body(users=[{"name": "u", "password": ""}]),
        "instance.users[0].password",
        "must not be empty",
    ),
    (
        create_body(users=[{"name": "u", "password": "p", "databases": [{"name": "nope"}]}]),
        "instance.users[0].databases[0].name",
        "'nope' is not among instance.databases",
    ),
    (
        create_body(users=[{"name": "u", "password": "p"}, {"name": "u", "password": "q"}]),
        "instance.users",
        "user 'u' is given twice",
    ),
    (
        create_body(access={"allowed_cidrs": ["10.0.0.1/24"]}),
        "instance.access.allowed_cidrs[0]",
        "host bits set; did you mean '10.0.0.0/24'",
    ),
    (
        create_body(access={"allowed_cidrs": ["0.0.0.0/0", "nonsense"]}),
        "instance.access.allowed_cidrs[1]",
        "is not a CIDR",
    ),
    (
        create_body(access={"allowed_cidrs": ["1.2.3.0/24", "1.2.3.0/24"]}),
        "instance.access.allowed_cidrs",
        "given twice",
    ),
    (create_body(access={"is_public": "yes"}), "instance.access.is_public", "true or false"),
    ({"instance": create_body()["instance"], "extra": 1}, "extra", "is not an accepted field"),
]


@pytest.mark.parametrize(("body", "field", "message"), BAD_INPUT)
def test_bad_input_is_400_naming_the_field_and_writes_nothing(
    api: Api, sessions: sessionmaker[Session], body: Any, field: str, message: str
) -> None:
    text = fault_of(api.post("/instances", json=body), "badRequest", 400)
    assert text.startswith(f"{field}: "), text
    assert message in text
    assert counts(sessions) == dict.fromkeys(
        ("instances", "security_groups", "security_group_rules", "jobs"), 0
    )


def test_invalid_json_is_400(api: Api) -> None:
    response = api.post(
        "/instances", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert fault_of(response, "badRequest", 400) == "body: is not valid JSON"


def test_an_inactive_version_is_refused(api: Api, sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        session.add(
            DatastoreVersion(
                id="old",
                datastore_id=POSTGRESQL,
                name="9.6",
                manager="postgresql",
                image="postgresql-9.6",
                ports="5432",
                active=False,
            )
        )
    response = api.post("/instances", json=create_body(datastore={"version": "9.6"}))
    assert "is not active" in fault_of(response, "badRequest", 400)
