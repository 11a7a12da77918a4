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

import copy
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
    return prefix_of(spec.instance_id)


def prefix_of(instance_id: str) -> str:
    """`member_prefix` of the member with that instance id."""
    return "m_" + re.sub(r"[^A-Za-z0-9_]", "_", instance_id) + "_"


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
        part = _member(
            spec,
            prefixes[spec.instance_id],
            primary=None if primary is None else (primary, by_id[primary].hostname),
            network=network,
            user_data=(user_data or {}).get(spec.instance_id),
        )
        parameters.update(part["parameters"])
        resources.update(part["resources"])
        outputs.update(part["outputs"])
    parameters.update(guest_timeout_parameter())
    return {
        "heat_template_version": HOT_VERSION,
        "description": _description(len(members)),
        "parameters": parameters,
        "resources": resources,
        "outputs": outputs,
    }


def _member(
    spec: InstanceSpec,
    prefix: str,
    *,
    primary: tuple[str, str] | None,
    network: str | None,
    user_data: Mapping[str, str] | None,
) -> dict[str, dict[str, Any]]:
    """One member's parameters, resources and outputs; `primary`: the (instance id,
    hostname) of the member the cluster replicates, if any."""
    guest_extra: dict[str, Any] = {}
    depends_on: list[str] = []
    if primary is not None:
        primary_id, primary_hostname = primary
        guest_extra["role"] = "primary" if spec.instance_id == primary_id else "replica"
        if spec.instance_id != primary_id:
            primary_prefix = prefix_of(primary_id)
            guest_extra["primary_instance_id"] = primary_id
            guest_extra["primary_hostname"] = primary_hostname
            guest_extra["primary_address"] = address_of(f"{primary_prefix}{SERVER}", network)
            depends_on.append(f"{primary_prefix}{READY}")
    return {
        "parameters": member_parameters(prefix),
        "resources": member_resources(
            spec,
            prefix=prefix,
            network=network,
            user_data=user_data,
            guest_extra=guest_extra,
            server_depends_on=depends_on,
        ),
        "outputs": member_outputs(spec, prefix=prefix, network=network),
    }


def _description(count: int) -> str:
    return f"cellar cluster of {count} members"


# Edits of a stored cluster template (`StackService.template`): a grow or a shrink is a
# stack update with the edited template. The other members' definitions are kept as
# stored, so the engine leaves their resources alone.


def with_members(
    template: Mapping[str, Any],
    members: Sequence[InstanceSpec],
    *,
    user_data: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """`template` with `members` added, each replicating its `replica_of` (a member of the
    template) as `cluster_template` lays it out; a member it has already is kept as it is.
    Their parameter values: `cluster_parameters(members, user_data)`."""
    edited = copy.deepcopy(dict(template))
    resources = edited.setdefault("resources", {})
    for spec in members:
        prefix = prefix_of(spec.instance_id)
        if f"{prefix}{SERVER}" in resources:
            continue
        primary = None
        if spec.replica_of is not None:
            hostname = edited.get("outputs", {}).get(f"{prefix_of(spec.replica_of)}hostname")
            if hostname is None:
                raise ValueError(f"the primary {spec.replica_of} is not a member of the cluster")
            primary = (spec.replica_of, str(hostname["value"]))
        part = _member(
            spec,
            prefix,
            primary=primary,
            network=_network(edited),
            user_data=(user_data or {}).get(spec.instance_id),
        )
        edited.setdefault("parameters", {}).update(part["parameters"])
        resources.update(part["resources"])
        edited.setdefault("outputs", {}).update(part["outputs"])
    edited["description"] = _description(len(member_ids(edited)))
    return edited


def without_members(template: Mapping[str, Any], instance_ids: Sequence[str]) -> dict[str, Any]:
    """`template` without the resources, parameters and outputs of those members."""
    edited = copy.deepcopy(dict(template))
    gone = {prefix_of(iid) for iid in instance_ids}
    # Longest first: a name belongs to the longest member prefix it starts with.
    prefixes = sorted({prefix_of(iid) for iid in member_ids(edited)} | gone, key=len)[::-1]
    for section in ("parameters", "resources", "outputs"):
        items = edited.get(section, {})
        for name in list(items):
            owner = next((p for p in prefixes if name.startswith(p)), None)
            if owner in gone:
                del items[name]
    edited["description"] = _description(len(member_ids(edited)))
    return edited


def member_ids(template: Mapping[str, Any]) -> list[str]:
    """The instance ids of the template's members, from their servers' metadata."""
    return [
        str(r["properties"]["metadata"]["cellar_instance_id"])
        for r in template.get("resources", {}).values()
        if r.get("type") == "OS::Nova::Server"
    ]


def _network(template: Mapping[str, Any]) -> str | None:
    """The network the template's servers are attached to (None: the cloud chooses)."""
    for resource in template.get("resources", {}).values():
        if resource.get("type") == "OS::Nova::Server":
            networks = resource.get("properties", {}).get("networks") or []
            return str(networks[0]["network"]) if networks else None
    return None


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
