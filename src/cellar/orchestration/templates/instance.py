"""One instance as a HOT template: security group, volume, server, attachment, DNS record and
the wait condition its guest signals when the database is ready.

What changes over the instance's life is a parameter (`flavor`, `volume_size`), so a resize
is a parameter-only PATCH update: the server resizes in place (`flavor_update_policy:
RESIZE`), the volume grows in place. The ingress rules are rendered from the spec as
template data (one rule per CIDR x datastore port), not from a CIDR list parameter: that
would need HOT's `repeat`, which the local engine would then have to implement. A rule
change is therefore a new template plus an update; `rules` is update_allowed on
`OS::Neutron::SecurityGroup`, so the group is reconciled in place and nothing else moves.

User data is one JSON object of strings (what `cellar.guest` reads from `user_data.json` on
its config drive), built by Heat's `list_join`: from HOT 2015-10-15 a map item is
JSON-serialised with sorted keys after its functions are resolved, so the wait condition's
`endpoint` and `token` land in it correctly escaped. Keys added here: `ready_signal_url`
and `ready_signal_token` (POST `{"status": "SUCCESS"}` with `X-Auth-Token`).

The building blocks take a name `prefix` so `cluster.py` lays out several members in one
template with the same code.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from cellar.domain.errors import BadRequest
from cellar.domain.specs import InstanceSpec, RuleSpec

HOT_VERSION = "2018-08-31"

# Stable logical resource names (a cluster member's carry its prefix).
SECURITY_GROUP = "security_group"
VOLUME = "volume"
SERVER = "server"
VOLUME_ATTACHMENT = "volume_attachment"
DNS_RECORD = "dns_record"
READY_HANDLE = "ready_handle"
READY = "ready"

# Parameter names (a cluster member's carry its prefix; GUEST_TIMEOUT is shared).
FLAVOR = "flavor"
VOLUME_SIZE = "volume_size"
GUEST_TIMEOUT = "guest_timeout"
GUEST_SECRET = "guest_secret"
# The user data key of the guest agent's secret (`cellar.guest`): its value is passed as
# the hidden parameter GUEST_SECRET.
GUEST_SECRET_KEY = "secret"
DEFAULT_GUEST_TIMEOUT_S = 600

# The guest's user data keys this module adds.
READY_SIGNAL_URL = "ready_signal_url"
READY_SIGNAL_TOKEN = "ready_signal_token"

DNS_TTL_S = 300


def instance_template(
    spec: InstanceSpec,
    *,
    network: str | None = None,
    user_data: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The HOT template of one instance; its parameters' values come from
    `instance_parameters(spec)`.

    `network`: the network (name or id) the server is attached to, or None to let the cloud
    choose; `user_data`: what the guest agent needs besides the wait condition
    (`GuestDriver.user_data(instance_id)`).
    """
    return {
        "heat_template_version": HOT_VERSION,
        "description": (
            f"cellar instance {spec.instance_id} ({spec.datastore} {spec.datastore_version})"
        ),
        "parameters": {**member_parameters(), **guest_timeout_parameter()},
        "resources": member_resources(spec, network=network, user_data=user_data),
        "outputs": member_outputs(spec, network=network),
    }


def instance_parameters(
    spec: InstanceSpec, user_data: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The parameter values of `instance_template(spec, user_data=...)` at create."""
    return member_values(spec, user_data=user_data)


def update_parameters(old: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    """The parameters of a PATCH update: `old` with `changes` applied (None means "keep").

    Refuses, before anything is touched, a change to a parameter the template does not
    have and a volume shrink (Cinder cannot shrink; Heat would fail the update half-way).
    Values read back from a stack may be strings, as Heat returns them.
    """
    merged = dict(old)
    for key, value in changes.items():
        if value is None:
            continue
        if key not in old and key != GUEST_TIMEOUT:
            raise BadRequest(key, f"the stack has no parameter {key!r}.")
        if _is_volume_size(key):
            value = _volume_size(value)
            current = _volume_size(old[key])
            if value < current:
                raise BadRequest(
                    "resize.volume.size",
                    f"a volume cannot shrink (from {current} GB to {value} GB).",
                )
        merged[key] = value
    return merged


def _is_volume_size(key: str) -> bool:
    return key == VOLUME_SIZE or key.endswith(f"_{VOLUME_SIZE}")


def _volume_size(value: Any) -> int:
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise BadRequest("resize.volume.size", f"{value!r} is not a whole number.") from None
    if size < 1:
        raise BadRequest("resize.volume.size", "a volume holds at least 1 GB.")
    return size


# Building blocks, shared with cluster.py.


def member_values(
    spec: InstanceSpec, *, prefix: str = "", user_data: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The values of `member_parameters(prefix)` for `spec`: the guest's secret, if its
    user data has one, travels as the hidden parameter, never in the template."""
    values: dict[str, Any] = {
        f"{prefix}{FLAVOR}": spec.flavor.id,
        f"{prefix}{VOLUME_SIZE}": spec.volume_size_gb,
    }
    secret = (user_data or {}).get(GUEST_SECRET_KEY)
    if secret:
        values[f"{prefix}{GUEST_SECRET}"] = secret
    return values


def member_parameters(prefix: str = "") -> dict[str, Any]:
    return {
        f"{prefix}{GUEST_SECRET}": {
            "type": "string",
            "label": "Guest secret",
            "description": (
                "The guest agent's secret (user data key `secret`); hidden, so the stored "
                "template and the stack's shown parameters never carry it."
            ),
            "hidden": True,
            "default": "",
        },
        f"{prefix}{FLAVOR}": {
            "type": "string",
            "label": "Flavor",
            "description": (
                "The server's flavor, by name or id as the cloud knows it; "
                "a change resizes the server in place."
            ),
        },
        f"{prefix}{VOLUME_SIZE}": {
            "type": "number",
            "label": "Volume size (GB)",
            "description": "The data volume's size; it can only grow (extended in place).",
            "constraints": [{"range": {"min": 1}, "description": "At least 1 GB."}],
        },
    }


def guest_timeout_parameter() -> dict[str, Any]:
    return {
        GUEST_TIMEOUT: {
            "type": "number",
            "label": "Guest timeout (s)",
            "description": "How long the guest has to signal that its database is ready.",
            "default": DEFAULT_GUEST_TIMEOUT_S,
            "constraints": [{"range": {"min": 1, "max": 43200}}],
        }
    }


def address_of(server: str, network: str | None) -> dict[str, Any]:
    """The server's address as Heat gives it: `networks.<network>[0]` when the network is
    known (Heat's recommendation), else the hidden but still resolved `first_address`."""
    if network is None:
        return {"get_attr": [server, "first_address"]}
    return {"get_attr": [server, "networks", network, 0]}


def member_resources(
    spec: InstanceSpec,
    *,
    prefix: str = "",
    network: str | None = None,
    user_data: Mapping[str, str] | None = None,
    guest_extra: Mapping[str, Any] | None = None,
    server_depends_on: Sequence[str] = (),
) -> dict[str, Any]:
    """The resources of one instance, named `<prefix><name>`.

    `guest_extra`: more user data entries, which may be intrinsic functions (a replica's
    primary address); `server_depends_on`: resources the server waits for.
    """
    sg, volume, server = f"{prefix}{SECURITY_GROUP}", f"{prefix}{VOLUME}", f"{prefix}{SERVER}"
    handle, attachment = f"{prefix}{READY_HANDLE}", f"{prefix}{VOLUME_ATTACHMENT}"
    given: dict[str, Any] = dict(user_data or {})
    if given.pop(GUEST_SECRET_KEY, None):
        given[GUEST_SECRET_KEY] = {"get_param": f"{prefix}{GUEST_SECRET}"}
    guest: dict[str, Any] = {
        **given,
        "instance_id": spec.instance_id,
        **dict(guest_extra or {}),
        READY_SIGNAL_URL: {"get_attr": [handle, "endpoint"]},
        READY_SIGNAL_TOKEN: {"get_attr": [handle, "token"]},
    }
    server_properties: dict[str, Any] = {
        "name": spec.resource_name,
        "image": spec.image,
        "flavor": {"get_param": f"{prefix}{FLAVOR}"},
        "flavor_update_policy": "RESIZE",
        "security_groups": [{"get_resource": sg}],
        "metadata": {"cellar_instance_id": spec.instance_id},
        "config_drive": True,
        "user_data_format": "RAW",
        "user_data": {"list_join": ["", [dict(sorted(guest.items()))]]},
        # Never replace a database server because its user data changed.
        "user_data_update_policy": "IGNORE",
    }
    if network is not None:
        server_properties["networks"] = [{"network": network}]
    server_resource: dict[str, Any] = {"type": "OS::Nova::Server", "properties": server_properties}
    if server_depends_on:
        server_resource["depends_on"] = list(server_depends_on)
    return {
        sg: {
            "type": "OS::Neutron::SecurityGroup",
            "properties": {
                "name": spec.resource_name,
                "description": f"Ingress to cellar instance {spec.instance_id}",
                "rules": [security_group_rule(rule) for rule in spec.ingress_rules()],
            },
        },
        volume: {
            "type": "OS::Cinder::Volume",
            "properties": {
                "name": spec.resource_name,
                "size": {"get_param": f"{prefix}{VOLUME_SIZE}"},
                "metadata": {"cellar_instance_id": spec.instance_id},
            },
        },
        handle: {"type": "OS::Heat::WaitConditionHandle"},
        server: server_resource,
        attachment: {
            "type": "OS::Cinder::VolumeAttachment",
            "properties": {
                "instance_uuid": {"get_resource": server},
                "volume_id": {"get_resource": volume},
            },
        },
        f"{prefix}{READY}": {
            "type": "OS::Heat::WaitCondition",
            # The guest puts its database on the volume: ready means attached first.
            "depends_on": [attachment],
            "properties": {
                "handle": {"get_resource": handle},
                "count": 1,
                "timeout": {"get_param": GUEST_TIMEOUT},
            },
        },
        f"{prefix}{DNS_RECORD}": dns_record_set(
            zone=spec.dns_zone, hostname=spec.hostname, server=server, network=network
        ),
    }


def dns_record_set(*, zone: str, hostname: str, server: str, network: str | None) -> dict[str, Any]:
    """The A record publishing `server`'s address as `hostname` (a resource definition):
    the same at provision and when `edits.with_dns_record` adds it to a stored template."""
    return {
        "type": "OS::Designate::RecordSet",
        "properties": {
            # Absolute names: designateclient appends the zone to a name without the final
            # dot.
            "zone": f"{zone}.",
            "name": f"{hostname}.",
            "type": "A",
            "records": [address_of(server, network)],
            "ttl": DNS_TTL_S,
        },
    }


def member_outputs(
    spec: InstanceSpec, *, prefix: str = "", network: str | None = None
) -> dict[str, Any]:
    return {
        f"{prefix}server_id": {"value": {"get_resource": f"{prefix}{SERVER}"}},
        f"{prefix}volume_id": {"value": {"get_resource": f"{prefix}{VOLUME}"}},
        f"{prefix}security_group_id": {"value": {"get_resource": f"{prefix}{SECURITY_GROUP}"}},
        **dns_record_outputs(prefix),
        f"{prefix}address": {"value": address_of(f"{prefix}{SERVER}", network)},
        f"{prefix}hostname": {"value": spec.hostname},
    }


def dns_record_outputs(prefix: str = "") -> dict[str, Any]:
    """The outputs that name the DNS record: they go with it when it is removed."""
    return {f"{prefix}dns_record_id": {"value": {"get_resource": f"{prefix}{DNS_RECORD}"}}}


def security_group_rule(rule: RuleSpec) -> dict[str, Any]:
    """One ingress rule of `OS::Neutron::SecurityGroup`'s `rules`, at provision and in every
    later rule change (`edits.with_rules`): one function, so an unchanged rule stays equal and
    the engine leaves it alone."""
    version = ipaddress.ip_network(rule.cidr, strict=False).version
    return {
        "direction": "ingress",
        "ethertype": f"IPv{version}",
        "protocol": rule.protocol,
        "port_range_min": rule.from_port,
        "port_range_max": rule.to_port,
        "remote_mode": "remote_ip_prefix",
        "remote_ip_prefix": rule.cidr,
    }
