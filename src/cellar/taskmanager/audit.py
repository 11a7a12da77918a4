"""`cellar audit`: cloud resources that no live instance owns.

Every resource cellar makes is named `cellar-<instance id>`; a resource whose instance
is deleted or unknown is an orphan. Resources with other names are not cellar's.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from cellar.db.engine import transaction
from cellar.db.instances import live_instance_ids
from cellar.domain.specs import instance_id_from_name
from cellar.drivers.registry import Services


@dataclass(frozen=True)
class Orphan:
    kind: str
    id: str
    name: str
    instance_id: str


def find_orphans(services: Services, sessions: sessionmaker[Session]) -> list[Orphan]:
    # Cloud first, then the database: an instance created in between is then live, not
    # reported as the owner of an orphan.
    found: list[tuple[str, str, str]] = []
    found += [("server", s.id, s.name) for s in services.compute.list_servers()]
    found += [("volume", v.id, v.name) for v in services.volume.list_volumes()]
    found += [("security_group", g.id, g.name) for g in services.network.list_security_groups()]
    found += [("dns_record", r.id, r.name) for r in services.dns.list_records()]
    with transaction(sessions) as s:
        live = live_instance_ids(s)
    orphans = []
    for kind, rid, name in found:
        owner = instance_id_from_name(name.split(".", 1)[0])
        if owner is not None and owner not in live:
            orphans.append(Orphan(kind, rid, name, owner))
    return orphans
