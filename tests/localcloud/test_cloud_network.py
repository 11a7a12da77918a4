"""Servers on the bridge: what they reach on the host, and security groups as nftables
rules inside their namespaces, changed live. The host itself is a client like any other,
except on the guest agent's port."""

from __future__ import annotations

import sys

from cloud_helpers import create, free_port, listening, probe, root, wait_for

from cellar.guest.protocol import AGENT_PORT
from cellar.localcloud import firewall
from cellar.localcloud.servers import Servers

pytestmark = root


def web(*ports: int) -> list[str]:
    """An agent stand-in that listens on these ports."""
    servers = [f"{sys.executable} -m http.server {port} --bind 0.0.0.0" for port in ports]
    return ["sh", "-c", " & ".join([*servers[:-1], f"exec {servers[-1]}"])]


def test_a_server_reaches_the_control_plane_port_of_the_host_and_nothing_else(
    cloud: Servers,
) -> None:
    server = create(cloud)
    gateway, api_port, other_port = cloud.net.gateway, cloud.settings.api_port, free_port()
    with listening(api_port), listening(other_port):
        assert probe(None, gateway, other_port) == "connected"  # the host itself may
        assert probe(server.netns, gateway, api_port) == "connected"
        assert probe(server.netns, gateway, other_port, timeout=0.5) == "timeout"
    assert firewall.host_table(cloud.net) in firewall.tables()


def test_the_host_reaches_the_agent_port_only(cloud: Servers) -> None:
    server, neighbour = create(cloud, web(AGENT_PORT, 8001)), create(cloud)
    assert server.address
    wait_for(lambda: probe(None, server.address or "", AGENT_PORT) == "connected", "agent")
    assert probe(None, server.address, 8001) == "refused"  # a reset: fast
    assert probe(neighbour.netns, server.address, AGENT_PORT) == "refused"


def test_security_group_rules_admit_by_cidr_and_change_live(cloud: Servers) -> None:
    group = cloud.groups.create(name="db")
    db = create(cloud, web(8000), groups=(group.id,))
    allowed, other = create(cloud), create(cloud)
    assert db.address and allowed.address and other.address
    first = cloud.groups.add_rule(
        group_id=group.id, protocol="tcp", from_port=8000, to_port=8000, cidr=allowed.address
    )
    wait_for(lambda: probe(allowed.netns, db.address or "", 8000) == "connected", "listener")
    assert probe(other.netns, db.address, 8000) == "refused"
    assert probe(None, db.address, 8000) == "refused"  # the host is no exception

    cloud.groups.add_rule(
        group_id=group.id, protocol="tcp", from_port=7000, to_port=9000, cidr=f"{other.address}/32"
    )
    assert probe(other.netns, db.address, 8000) == "connected"
    cloud.groups.delete_rule(first.id)
    assert probe(allowed.netns, db.address, 8000) == "refused"
    assert probe(other.netns, db.address, 8000) == "connected"
    assert firewall.tables(db.netns) == [firewall.TABLE]
