"""The instance template: structure, per-spec differences, PATCH parameters."""

from __future__ import annotations

import json

import pytest

from cellar.domain.errors import BadRequest
from cellar.orchestration.templates import (
    HOT_VERSION,
    instance_parameters,
    instance_template,
    update_parameters,
)
from orchestration.templates.helpers import (
    LARGE,
    assert_references_exist,
    closure,
    functions,
    requires,
    spec,
)

RESOURCE_TYPES = {
    "security_group": "OS::Neutron::SecurityGroup",
    "volume": "OS::Cinder::Volume",
    "server": "OS::Nova::Server",
    "volume_attachment": "OS::Cinder::VolumeAttachment",
    "dns_record": "OS::Designate::RecordSet",
    "ready_handle": "OS::Heat::WaitConditionHandle",
    "ready": "OS::Heat::WaitCondition",
}


def test_structure() -> None:
    template = instance_template(spec("i-1"), user_data={"secret": "s"})
    assert template["heat_template_version"] == HOT_VERSION == "2018-08-31"
    assert {name: r["type"] for name, r in template["resources"].items()} == RESOURCE_TYPES
    assert set(template["outputs"]) >= {
        "server_id",
        "volume_id",
        "security_group_id",
        "address",
        "hostname",
    }
    assert_references_exist(template)
    json.dumps(template)  # plain data


def test_parameters_have_types_and_constraints() -> None:
    parameters = instance_template(spec())["parameters"]
    assert parameters["flavor"]["type"] == "string"
    assert parameters["volume_size"]["type"] == "number"
    assert parameters["volume_size"]["constraints"] == [
        {"range": {"min": 1}, "description": "At least 1 GB."}
    ]
    assert parameters["guest_timeout"]["type"] == "number"
    assert parameters["guest_timeout"]["default"] == 600
    allowed = {"type", "label", "description", "default", "hidden", "constraints", "immutable"}
    assert all(set(p) <= allowed for p in parameters.values())
    # Every parameter without a default gets a value at create.
    required = {name for name, p in parameters.items() if "default" not in p}
    assert required == set(instance_parameters(spec()))


def test_dependencies() -> None:
    resources = instance_template(spec())["resources"]
    server = resources["server"]
    assert server["properties"]["security_groups"] == [{"get_resource": "security_group"}]
    assert {"security_group", "ready_handle"} <= requires(server)
    assert requires(resources["volume_attachment"]) == {"server", "volume"}
    assert resources["ready"]["properties"]["handle"] == {"get_resource": "ready_handle"}
    assert resources["ready"]["properties"]["count"] == 1
    assert resources["ready"]["properties"]["timeout"] == {"get_param": "guest_timeout"}
    assert {"server", "volume_attachment", "ready_handle"} <= closure(resources, "ready")
    assert requires(resources["dns_record"]) == {"server"}


def test_dns_record_uses_the_server_address() -> None:
    record = instance_template(spec("i-1"))["resources"]["dns_record"]["properties"]
    assert record["type"] == "A"
    assert record["records"] == [{"get_attr": ["server", "first_address"]}]
    assert record["name"] == "cellar-i-1.cellar.internal."
    record = instance_template(spec(), network="db-net")["resources"]["dns_record"]
    assert record["properties"]["records"] == [{"get_attr": ["server", "networks", "db-net", 0]}]


def test_server() -> None:
    template = instance_template(spec("i-1"), network="db-net", user_data={"secret": "s"})
    server = template["resources"]["server"]["properties"]
    assert server["name"] == template["resources"]["volume"]["properties"]["name"] == "cellar-i-1"
    assert server["image"] == "cellar-postgresql-15"
    assert server["flavor"] == {"get_param": "flavor"}
    assert server["flavor_update_policy"] == "RESIZE"
    assert server["networks"] == [{"network": "db-net"}]
    assert server["user_data_format"] == "RAW"
    [(delimiter, [guest])] = functions(server["user_data"], "list_join")
    assert delimiter == ""
    assert guest == {
        "instance_id": "i-1",
        "ready_signal_token": {"get_attr": ["ready_handle", "token"]},
        "ready_signal_url": {"get_attr": ["ready_handle", "endpoint"]},
        "secret": {"get_param": "guest_secret"},
    }


def test_the_guest_secret_is_a_hidden_parameter_never_in_the_template() -> None:
    user_data = {"instance_id": "i-1", "secret": "s3cr3t-value"}
    template = instance_template(spec("i-1"), user_data=user_data)
    assert "s3cr3t-value" not in json.dumps(template)
    assert template["parameters"]["guest_secret"]["hidden"] is True
    assert instance_parameters(spec("i-1"), user_data)["guest_secret"] == "s3cr3t-value"
    # Without a secret (the fake guest) nothing refers to the parameter.
    assert "guest_secret" not in instance_parameters(spec("i-1"))


def test_rules_are_cidrs_times_ports() -> None:
    template = instance_template(
        spec(ports=(5432, 8080), allowed_cidrs=("10.0.0.0/8", "2001:db8::/32"))
    )
    rules = template["resources"]["security_group"]["properties"]["rules"]
    assert [(r["remote_ip_prefix"], r["port_range_min"], r["ethertype"]) for r in rules] == [
        ("10.0.0.0/8", 5432, "IPv4"),
        ("10.0.0.0/8", 8080, "IPv4"),
        ("2001:db8::/32", 5432, "IPv6"),
        ("2001:db8::/32", 8080, "IPv6"),
    ]
    assert all(r["direction"] == "ingress" and r["protocol"] == "tcp" for r in rules)
    assert all(r["port_range_min"] == r["port_range_max"] for r in rules)


def test_flavor_and_volume_size_are_parameters() -> None:
    small, large = spec("i-1"), spec("i-1", flavor=LARGE, volume_size_gb=50)
    assert instance_template(small) == instance_template(large)
    assert instance_parameters(small) == {"flavor": "f-small", "volume_size": 2}
    assert instance_parameters(large) == {"flavor": "f-large", "volume_size": 50}
    volume = instance_template(small)["resources"]["volume"]["properties"]
    assert volume["size"] == {"get_param": "volume_size"}


def test_only_the_rules_differ_between_cidr_sets() -> None:
    one = instance_template(spec(allowed_cidrs=("10.0.0.0/8",)))["resources"]
    two = instance_template(spec(allowed_cidrs=("10.0.0.0/8", "192.168.0.0/16")))["resources"]
    assert [name for name in one if one[name] != two[name]] == ["security_group"]


def test_update_parameters_keeps_what_is_not_given() -> None:
    old = {"flavor": "f-small", "volume_size": "2"}  # as Heat returns them
    assert update_parameters(old, flavor="f-large") == {"flavor": "f-large", "volume_size": "2"}
    assert update_parameters(old, volume_size=5, flavor=None) == {
        "flavor": "f-small",
        "volume_size": 5,
    }
    assert update_parameters(old, volume_size=2) == {"flavor": "f-small", "volume_size": 2}
    assert old == {"flavor": "f-small", "volume_size": "2"}


def test_update_parameters_refuses_a_shrink() -> None:
    with pytest.raises(BadRequest) as caught:
        update_parameters({"flavor": "f", "volume_size": 10}, flavor="g", volume_size=9)
    assert caught.value.field == "resize.volume.size"
    with pytest.raises(BadRequest):
        update_parameters({"m_a_volume_size": "10"}, m_a_volume_size=1)
    with pytest.raises(BadRequest):
        update_parameters({"volume_size": 10}, volume_size=0)


def test_update_parameters_refuses_an_unknown_parameter() -> None:
    with pytest.raises(BadRequest) as caught:
        update_parameters({"flavor": "f"}, flavour="g")
    assert caught.value.field == "flavour"
