"""Edits of a stored instance template (`StackService.template`): a rule change or a DNS
record added or removed is a stack update with the edited template, its parameters kept.
Each edit returns a new template and leaves the one given alone; what it adds is made by
the same builders as the provision (`instance.py`), so unchanged parts stay equal and the
engine leaves them alone."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from cellar.domain.specs import RuleSpec
from cellar.orchestration.templates.instance import (
    DNS_RECORD,
    SECURITY_GROUP,
    SERVER,
    dns_record_outputs,
    dns_record_set,
    security_group_rule,
)


def template_rules(template: Mapping[str, Any], prefix: str = "") -> list[RuleSpec]:
    """The ingress rules of the template's security group, in their order."""
    rules = _resource(template, f"{prefix}{SECURITY_GROUP}").get("properties", {}).get("rules")
    return [_rule_spec(rule) for rule in rules or []]


def with_rules(
    template: Mapping[str, Any], rules: Sequence[RuleSpec], prefix: str = ""
) -> dict[str, Any]:
    """`template` with exactly `rules` (duplicates dropped, order kept) on its security
    group: `rules` is update_allowed, so the update reconciles the group in place."""
    edited = copy.deepcopy(dict(template))
    group = _resource(edited, f"{prefix}{SECURITY_GROUP}")
    group.setdefault("properties", {})["rules"] = [
        security_group_rule(rule) for rule in dict.fromkeys(rules)
    ]
    return edited


def with_dns_record(
    template: Mapping[str, Any], *, zone: str, hostname: str, prefix: str = ""
) -> dict[str, Any]:
    """`template` with the DNS record of its server (and the outputs naming it), as the
    provision makes it; a template that has the record already is returned unchanged."""
    edited = copy.deepcopy(dict(template))
    resources = edited.setdefault("resources", {})
    if f"{prefix}{DNS_RECORD}" in resources:
        return edited
    server = f"{prefix}{SERVER}"
    network = server_network(edited, prefix)
    resources[f"{prefix}{DNS_RECORD}"] = dns_record_set(
        zone=zone, hostname=hostname, server=server, network=network
    )
    edited.setdefault("outputs", {}).update(dns_record_outputs(prefix))
    return edited


def without_dns_record(template: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`template` without the DNS record, nor the outputs that name it (an output naming
    a resource the template lacks would make the update invalid)."""
    edited = copy.deepcopy(dict(template))
    edited.get("resources", {}).pop(f"{prefix}{DNS_RECORD}", None)
    for name in dns_record_outputs(prefix):
        edited.get("outputs", {}).pop(name, None)
    return edited


def server_network(template: Mapping[str, Any], prefix: str = "") -> str | None:
    """The network the template attaches its server to; None when the cloud chooses."""
    properties = _resource(template, f"{prefix}{SERVER}").get("properties", {})
    networks = properties.get("networks") or []
    return str(networks[0]["network"]) if networks else None


def _resource(template: Mapping[str, Any], name: str) -> Any:
    try:
        return template["resources"][name]
    except KeyError:
        raise ValueError(f"the template has no resource {name!r}") from None


def _rule_spec(rule: Mapping[str, Any]) -> RuleSpec:
    """The rule a `security_group_rule` entry describes (its inverse)."""
    return RuleSpec(
        protocol=str(rule["protocol"]),
        from_port=int(rule["port_range_min"]),
        to_port=int(rule["port_range_max"]),
        cidr=str(rule["remote_ip_prefix"]),
    )
