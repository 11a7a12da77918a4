"""A heterogeneous cluster as one HOT template: a list of members, each an instance of its
own (flavor, volume, security group, server, DNS record, wait condition).

Each member's resources and parameters are prefixed by `member_prefix(spec)`, derived from
its instance id rather than its position: removing a member from the middle of the list
then renames nobody, and a member's definitions depend only on itself and the primary, so
growing or shrinking the cluster (a new member list and a stack update) leaves every other
member's resources equal and Heat touches nothing else.

A replica's server `depends_on` the primary's wait condition (the primary's database is
ready before any replica boots) and its user data carries the primary's address through
`get_attr` (keys `role`, `primary_instance_id`, `primary_hostname`, `primary_address`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from cellar.domain.specs import InstanceSpec
from cellar.orchestration.templates.instance import (
    HOT_VERSION,
    READY,
    SERVER,
    address_of,
    guest_timeout_parameter,
    member_outputs,
    member_parameters,
    member_resources,
    member_values,
)


def member_prefix(spec: InstanceSpec) -> str:
    """`m_<instance id>_`, with anything but letters, digits and `_` as `_`."""
    return "m_" + re.sub(r"[^A-Za-z0-9_]", "_", spec.instance_id) + "_"


def cluster_template(
    members: Sequence[InstanceSpec],
    primary: str | None = None,
    *,
    network: str | None = None,
    user_data: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """The HOT template of a cluster; its parameters' values come from
    `cluster_parameters(members)`.

    `primary`: the instance id of the member the others replicate, or None for a cluster of
    peers; `user_data`: each member's guest user data, by instance id.
    """
    prefixes = _prefixes(members)
    by_id = {spec.instance_id: spec for spec in members}
    if primary is not None and primary not in by_id:
        raise ValueError(f"the primary {primary} is not a member of the cluster")
    parameters: dict[str, Any] = {}
    resources: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    for spec in members:
        prefix = prefixes[spec.instance_id]
        guest_extra: dict[str, Any] = {}
        depends_on: list[str] = []
        if primary is not None:
            guest_extra["role"] = "primary" if spec.instance_id == primary else "replica"
        if primary is not None and spec.instance_id != primary:
            primary_prefix = prefixes[primary]
            guest_extra["primary_instance_id"] = primary
            guest_extra["primary_hostname"] = by_id[primary].hostname
            guest_extra["primary_address"] = address_of(f"{primary_prefix}{SERVER}", network)
            depends_on.append(f"{primary_prefix}{READY}")
        parameters.update(member_parameters(prefix))
        resources.update(
            member_resources(
                spec,
                prefix=prefix,
                network=network,
                user_data=(user_data or {}).get(spec.instance_id),
                guest_extra=guest_extra,
                server_depends_on=depends_on,
            )
        )
        outputs.update(member_outputs(spec, prefix=prefix, network=network))
    parameters.update(guest_timeout_parameter())
    return {
        "heat_template_version": HOT_VERSION,
        "description": f"cellar cluster of {len(members)} members",
        "parameters": parameters,
        "resources": resources,
        "outputs": outputs,
    }


def cluster_parameters(
    members: Sequence[InstanceSpec], user_data: Mapping[str, Mapping[str, str]] | None = None
) -> dict[str, Any]:
    """The parameter values of `cluster_template(members, user_data=...)` at create (or
    after a grow)."""
    values: dict[str, Any] = {}
    for spec in members:
        member_data = (user_data or {}).get(spec.instance_id)
        values.update(member_values(spec, prefix=member_prefix(spec), user_data=member_data))
    return values


def _prefixes(members: Sequence[InstanceSpec]) -> dict[str, str]:
    prefixes = {spec.instance_id: member_prefix(spec) for spec in members}
    if len(set(prefixes.values())) != len(members):
        raise ValueError("cluster members need distinct instance ids")
    return prefixes
