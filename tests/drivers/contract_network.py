"""The network contract: security groups and their ingress rules, refused as Neutron would."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from contract_support import Wait, active_server, missing_id, unique

from cellar.domain.specs import RuleSpec
from cellar.drivers.network.base import (
    InvalidRule,
    SecurityGroupInUse,
    SecurityGroupNotFound,
    SecurityGroupRule,
    SecurityGroupRuleNotFound,
)
from cellar.drivers.registry import Services

RULE = RuleSpec(protocol="tcp", from_port=3306, to_port=3306, cidr="10.0.0.0/8")


def add_rule(services: Services, group_id: str, rule: RuleSpec = RULE) -> SecurityGroupRule:
    return services.network.create_security_group_rule(
        group_id=group_id,
        protocol=rule.protocol,
        from_port=rule.from_port,
        to_port=rule.to_port,
        cidr=rule.cidr,
    )


class NetworkContract:
    def test_create_a_security_group(self, services: Services) -> None:
        created = services.network.create_security_group(name=unique("group"), description="db")
        group = services.network.get_security_group(created.id)
        assert (group.name, group.description, group.rules) == (created.name, "db", ())
        assert group.id in {g.id for g in services.network.list_security_groups()}
        found = services.network.find_security_group(group.name)
        assert found is not None and found.id == group.id

    def test_find_security_group_by_unknown_name(self, services: Services) -> None:
        assert services.network.find_security_group(unique("nothing")) is None

    @pytest.mark.parametrize("operation", ["get", "delete", "add_rule"])
    def test_unknown_security_group_is_refused(self, services: Services, operation: str) -> None:
        network, group_id = services.network, missing_id()
        calls: dict[str, Callable[[], object]] = {
            "get": lambda: network.get_security_group(group_id),
            "delete": lambda: network.delete_security_group(group_id),
            "add_rule": lambda: add_rule(services, group_id),
        }
        with pytest.raises(SecurityGroupNotFound) as caught:
            calls[operation]()
        assert caught.value.group_id == group_id

    def test_add_a_rule(self, services: Services) -> None:
        group = services.network.create_security_group(name=unique("group"))
        rule = add_rule(services, group.id)
        assert (rule.group_id, rule.protocol, rule.from_port, rule.to_port, rule.cidr) == (
            group.id,
            "tcp",
            3306,
            3306,
            "10.0.0.0/8",
        )
        assert services.network.get_security_group(group.id).rules == (rule,)
        listed = [g for g in services.network.list_security_groups() if g.id == group.id]
        assert listed[0].rules == (rule,)

    def test_a_duplicate_rule_is_refused(self, services: Services) -> None:
        group = services.network.create_security_group(name=unique("group"))
        first = add_rule(services, group.id)
        with pytest.raises(InvalidRule):
            add_rule(services, group.id)
        assert services.network.get_security_group(group.id).rules == (first,)

    def test_the_same_rule_in_two_groups(self, services: Services) -> None:
        groups = [services.network.create_security_group(name=unique("group")) for _ in "ab"]
        rules = [add_rule(services, g.id) for g in groups]
        assert rules[0].id != rules[1].id

    @pytest.mark.parametrize(
        "rule",
        [
            RuleSpec("gre", 3306, 3306, "10.0.0.0/8"),
            RuleSpec("tcp", 0, 3306, "10.0.0.0/8"),
            RuleSpec("tcp", 3306, 65536, "10.0.0.0/8"),
            RuleSpec("udp", 5000, 4000, "10.0.0.0/8"),
            RuleSpec("tcp", 3306, 3306, "10.0.0.0/33"),
            RuleSpec("tcp", 3306, 3306, "10.0.0.256/24"),
            RuleSpec("tcp", 3306, 3306, "everywhere"),
        ],
        ids=["protocol", "port-0", "port-65536", "from-after-to", "prefix", "octet", "word"],
    )
    def test_an_invalid_rule_is_refused(self, services: Services, rule: RuleSpec) -> None:
        group = services.network.create_security_group(name=unique("group"))
        with pytest.raises(InvalidRule):
            add_rule(services, group.id, rule)
        assert services.network.get_security_group(group.id).rules == ()

    def test_delete_a_rule(self, services: Services) -> None:
        group = services.network.create_security_group(name=unique("group"))
        rule = add_rule(services, group.id)
        services.network.delete_security_group_rule(rule.id)
        assert services.network.get_security_group(group.id).rules == ()
        with pytest.raises(SecurityGroupRuleNotFound) as caught:
            services.network.delete_security_group_rule(rule.id)
        assert caught.value.rule_id == rule.id

    def test_delete_a_group_with_its_rules(self, services: Services) -> None:
        group = services.network.create_security_group(name=unique("group"))
        add_rule(services, group.id)
        services.network.delete_security_group(group.id)
        with pytest.raises(SecurityGroupNotFound):
            services.network.get_security_group(group.id)
        assert services.network.find_security_group(group.name) is None

    def test_a_group_in_use_cannot_be_deleted(self, services: Services, wait: Wait) -> None:
        group = services.network.create_security_group(name=unique("group"))
        server = active_server(services, wait, groups=(group.id,))
        with pytest.raises(SecurityGroupInUse) as caught:
            services.network.delete_security_group(group.id)
        assert caught.value.group_id == group.id
        assert services.network.get_security_group(group.id).id == group.id
        services.compute.delete_server(server.id)
        wait.until(
            lambda: services.compute.find_server(server.name),
            lambda found: found is None,
            f"server {server.id} gone",
        )
        services.network.delete_security_group(group.id)
        assert services.network.find_security_group(group.name) is None
