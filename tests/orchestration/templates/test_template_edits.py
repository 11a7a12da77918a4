"""Edits of a stored instance template: the rule list and the DNS record, as the
orchestrator changes them by stack update."""

from __future__ import annotations

import copy

from cellar.domain.specs import RuleSpec
from cellar.orchestration.templates.edits import (
    server_network,
    template_rules,
    with_dns_record,
    with_rules,
    without_dns_record,
)
from cellar.orchestration.templates.instance import instance_template, security_group_rule
from orchestration.templates.helpers import assert_references_exist, spec

EXTRA = RuleSpec("tcp", 5432, 5432, "192.0.2.0/24")


def test_the_template_rules_are_made_by_security_group_rule() -> None:
    s = spec(ports=(5432, 8080), allowed_cidrs=("10.0.0.0/8", "2001:db8::/32"))
    template = instance_template(s)
    rules = template["resources"]["security_group"]["properties"]["rules"]
    assert rules == [security_group_rule(rule) for rule in s.ingress_rules()]
    # ... and read back as the rules they were made from.
    assert template_rules(template) == list(s.ingress_rules())


def test_with_rules_changes_only_the_group_rules() -> None:
    template = instance_template(spec(allowed_cidrs=("10.0.0.0/8",)))
    before = copy.deepcopy(template)
    (provisioned,) = template_rules(template)
    edited = with_rules(template, [provisioned, EXTRA, EXTRA])
    assert template == before  # the given template is left alone
    assert template_rules(edited) == [provisioned, EXTRA]  # duplicates dropped
    changed = [
        n for n in template["resources"] if template["resources"][n] != edited["resources"][n]
    ]
    assert changed == ["security_group"]
    assert {k: v for k, v in edited.items() if k != "resources"} == {
        k: v for k, v in template.items() if k != "resources"
    }
    # The same rules give the same template: an update with it changes nothing.
    assert with_rules(edited, [provisioned]) == template
    # A template made from a spec with the extra CIDR is the edited one.
    assert edited == instance_template(spec(allowed_cidrs=("10.0.0.0/8", "192.0.2.0/24")))


def test_without_and_with_dns_record_are_inverse() -> None:
    for network in (None, "net-1"):
        s = spec()
        template = instance_template(s, network=network)
        assert server_network(template) == network
        bare = without_dns_record(template)
        assert "dns_record" not in bare["resources"]
        assert "dns_record_id" not in bare["outputs"]
        assert "hostname" in bare["outputs"]
        assert_references_exist(bare)
        assert "dns_record" in template["resources"]  # the given template is left alone
        again = with_dns_record(bare, zone=s.dns_zone, hostname=s.hostname)
        assert again == template
        # Added to a template that has it, nothing changes.
        assert with_dns_record(template, zone="other.zone", hostname="x.other.zone") == template
        assert without_dns_record(bare) == bare
