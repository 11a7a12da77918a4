"""Security groups as nftables rules, and the host's protection from its servers.

Groups and rules are rows (kinds `GROUP`, `RULE`, a rule's parent is its group); a
server's groups are listed in its row. Each server namespace holds one table, `inet
cellar`, rebuilt from the rows whenever a rule of one of its groups changes: input policy
drop; accept lo, established/related, and the host (the bridge address) on the guest
agent's port, where the control plane sends its commands; one accept per rule; a TCP
reset for any other TCP, so a refused client fails at once instead of waiting for a
timeout. The host gets no more than that: a database port is open to it only if a rule
admits it, as to anyone (the access rules of an instance hold for every client).

The table is replaced atomically: one `nft -f -` file that declares it, deletes it and
defines it again is a single transaction, so there is never a moment without rules.
Renders and loads are serialised by one lock, so a slow writer never loads rules older
than those a faster one loaded.

The host gets its own table, `inet <bridge>_host`: traffic that arrives on the bridge
and is addressed to the host is dropped, except replies and TCP to the bridge address on
the control plane's port (`settings.api_port`), where the guest agents report. Without it
a server reaches every host service bound to 0.0.0.0. No other table of the host's
ruleset is ever touched.
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from dataclasses import dataclass

from cellar.config import Settings
from cellar.domain.rules import normalized_rule
from cellar.guest.protocol import AGENT_PORT
from cellar.localcloud.network import SERVER, Network, file_lock, namespace_exists
from cellar.localcloud.state import CloudState, Resource
from cellar.localcloud.system import LocalCloudError, run

GROUP, RULE = "group", "rule"
# pgBackRest's TLS servers (`cellar.localcloud.backups`): the repository's, on the host,
# which the guests reach; each guest's, which the repository host reaches.
BACKUP_REPOSITORY_PORT = 8432
BACKUP_GUEST_PORT = 8433
TABLE = "cellar"


class GroupMissing(LocalCloudError):
    def __init__(self, group_id: str) -> None:
        super().__init__(f"Security group {group_id} does not exist.")
        self.group_id = group_id


class RuleMissing(LocalCloudError):
    def __init__(self, rule_id: str) -> None:
        super().__init__(f"Security group rule {rule_id} does not exist.")
        self.rule_id = rule_id


class GroupInUse(LocalCloudError):
    def __init__(self, group_id: str, server_id: str) -> None:
        super().__init__(f"Security group {group_id} is in use by server {server_id}.")
        self.group_id = group_id
        self.server_id = server_id


class RuleRefused(LocalCloudError):
    """A rule the cloud refuses: bad protocol, port range or CIDR, or a duplicate."""


@dataclass(frozen=True)
class Rule:
    id: str
    group_id: str
    protocol: str
    from_port: int
    to_port: int
    cidr: str


@dataclass(frozen=True)
class Group:
    id: str
    name: str
    description: str
    rules: tuple[Rule, ...]


def checked_rule(protocol: str, from_port: int, to_port: int, cidr: str) -> dict[str, object]:
    """The rule's data, its CIDR normalised (as Neutron does); `RuleRefused` if refused."""
    try:
        return normalized_rule(protocol, from_port, to_port, cidr)
    except ValueError as exc:
        raise RuleRefused(str(exc)) from None


def _to_rule(row: Resource) -> Rule:
    d = row.data
    return Rule(row.id, str(row.parent), d["protocol"], d["from_port"], d["to_port"], d["cidr"])


class SecurityGroups:
    def __init__(self, settings: Settings, state: CloudState) -> None:
        self.net = Network.from_settings(settings)
        self.state = state
        self._lock_path = settings.local_root / "locks" / "firewall.lock"

    def _group(self, row: Resource) -> Group:
        rules = tuple(_to_rule(r) for r in self.state.list(RULE, parent=row.id))
        return Group(row.id, row.name, row.data["description"], rules)

    def require(self, group_id: str) -> Resource:
        row = self.state.get(GROUP, group_id)
        if row is None:
            raise GroupMissing(group_id)
        return row

    def all(self) -> list[Group]:
        return [self._group(row) for row in self.state.list(GROUP)]

    def get(self, group_id: str) -> Group:
        return self._group(self.require(group_id))

    def find(self, name: str) -> Group | None:
        rows = self.state.find(GROUP, name)
        return self._group(rows[0]) if rows else None

    def create(self, *, name: str, description: str = "") -> Group:
        row = Resource(str(uuid.uuid4()), GROUP, name, None, {"description": description})
        return self._group(self.state.put(row))

    def users(self, group_id: str) -> list[str]:
        """The servers whose row lists the group."""
        return [
            row.id
            for row in self.state.list(SERVER)
            if group_id in row.data.get("security_group_ids", ())
        ]

    def delete(self, group_id: str) -> None:
        with self.state.tx():  # one transaction with the check: no server adopts it meanwhile
            self.require(group_id)
            users = self.users(group_id)
            if users:
                raise GroupInUse(group_id, users[0])
            for rule in self.state.list(RULE, parent=group_id):
                self.state.delete(RULE, rule.id)
            self.state.delete(GROUP, group_id)

    def add_rule(
        self, *, group_id: str, protocol: str, from_port: int, to_port: int, cidr: str
    ) -> Rule:
        with self.state.tx():
            self.require(group_id)
            data = checked_rule(protocol, from_port, to_port, cidr)
            if any(row.data == data for row in self.state.list(RULE, parent=group_id)):
                raise RuleRefused(
                    f"Security group {group_id} already has the rule "
                    f"{protocol} {from_port}..{to_port} from {data['cidr']}."
                )
            rule = _to_rule(self.state.put(Resource(str(uuid.uuid4()), RULE, "", group_id, data)))
        self.refresh(group_id)
        return rule

    def delete_rule(self, rule_id: str) -> None:
        row = self.state.get(RULE, rule_id)
        if row is None:
            raise RuleMissing(rule_id)
        self.state.delete(RULE, rule_id)
        self.refresh(str(row.parent))

    def refresh(self, group_id: str) -> None:
        """Reload the table of every server of the group (the rows are the truth: a
        failed load here is repaired by the next change or the server's next reboot)."""
        for server_id in self.users(group_id):
            self.apply(server_id)

    def apply(self, server_id: str) -> None:
        """Load the server's table from the rows as they are now (if it has a namespace)."""
        with file_lock(self._lock_path):
            server = self.state.get(SERVER, server_id)
            if server is None or not namespace_exists(server.data["netns"]):
                return
            rules = [
                rule
                for group_id in server.data.get("security_group_ids", ())
                for rule in (_to_rule(r) for r in self.state.list(RULE, parent=group_id))
            ]
            netns = server.data["netns"]
            result = run(
                ["nft", "-f", "-"], netns=netns, input=render(self.net, rules), check=False
            )
            # A server deleted meanwhile (its namespace gone) needs no rules.
            if result.returncode != 0 and namespace_exists(netns):
                raise LocalCloudError(f"Loading {TABLE} into {netns} failed: {result.stderr}")


def _match(rule: Rule) -> str:
    family = "ip6" if ipaddress.ip_network(rule.cidr).version == 6 else "ip"
    source = f"{family} saddr {rule.cidr}"
    if rule.protocol == "icmp":
        icmp = "icmpv6" if family == "ip6" else "icmp"
        return f"{source} {icmp} type {rule.from_port} {icmp} code {rule.to_port}"
    ports = str(rule.from_port)
    if rule.to_port != rule.from_port:
        ports = f"{rule.from_port}-{rule.to_port}"
    return f"{source} {rule.protocol} dport {ports}"


def render(net: Network, rules: list[Rule]) -> str:
    """The nft file that replaces a server's table with these rules."""
    accepts = [f'        {_match(r)} accept comment "rule {r.id}"' for r in rules]
    return "\n".join(
        [
            f"table inet {TABLE}",  # declared first, so that the delete never fails
            f"delete table inet {TABLE}",
            f"table inet {TABLE} {{",
            "    chain input {",
            "        type filter hook input priority filter; policy drop;",
            '        iif "lo" accept',
            "        ct state established,related accept",
            f"        ip saddr {net.gateway} tcp dport {AGENT_PORT} accept"
            ' comment "the control plane to the guest agent"',
            f"        ip saddr {net.gateway} tcp dport {BACKUP_GUEST_PORT} accept"
            ' comment "the backup repository host to the pgBackRest server of the guest"',
            *accepts,
            "        meta l4proto tcp reject with tcp reset",
            "    }",
            "}",
            "",
        ]
    )


def host_table(net: Network) -> str:
    return f"{net.bridge.replace('-', '_')}_host"


def ensure_host_table(net: Network, api_port: int) -> None:
    """Load (or reload) the host's table that keeps servers away from the host."""
    table, bridge = host_table(net), net.bridge
    rules = "\n".join(
        [
            f"table inet {table}",
            f"delete table inet {table}",
            f"table inet {table} {{",
            "    chain input {",
            "        type filter hook input priority filter; policy accept;",
            f'        iifname "{bridge}" ct state established,related accept',
            f'        iifname "{bridge}" ip daddr {net.gateway} tcp dport {api_port} accept',
            f'        iifname "{bridge}" ip daddr {net.gateway} tcp dport {BACKUP_REPOSITORY_PORT}'
            " accept",
            f'        iifname "{bridge}" drop',
            "    }",
            "}",
            "",
        ]
    )
    run(["nft", "-f", "-"], input=rules)


def remove_host_table(net: Network) -> None:
    if host_table(net) in tables():
        run(["nft", "delete", "table", "inet", host_table(net)])


def tables(netns: str | None = None) -> list[str]:
    """The names of the nftables tables of the host, or of a namespace."""
    out = run(["nft", "-j", "list", "tables"], netns=netns).stdout
    entries = json.loads(out or "{}").get("nftables", [])
    return [entry["table"]["name"] for entry in entries if "table" in entry]
