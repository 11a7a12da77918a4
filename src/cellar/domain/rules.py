"""What makes an ingress rule valid, as a network service (Neutron) judges it: one place
for the fake cloud and the local cloud, which each raise their own error with the message."""

from __future__ import annotations

import ipaddress

PROTOCOLS = ("icmp", "tcp", "udp")


def normalized_rule(protocol: str, from_port: int, to_port: int, cidr: str) -> dict[str, object]:
    """The rule's data with its CIDR normalised (`10.0.0.1/24` -> `10.0.0.0/24`);
    ValueError saying what is wrong otherwise."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"Protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}.")
    if protocol == "icmp":  # The "ports" of an ICMP rule are its type and code.
        if not (0 <= from_port <= 255 and 0 <= to_port <= 255):
            raise ValueError(f"ICMP type {from_port} and code {to_port} must be in 0..255.")
    elif not 1 <= from_port <= to_port <= 65535:
        raise ValueError(f"Port range {from_port}..{to_port} is not within 1..65535.")
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        raise ValueError(f"{cidr!r} is not a CIDR.") from None
    return {"protocol": protocol, "from_port": from_port, "to_port": to_port, "cidr": str(network)}
