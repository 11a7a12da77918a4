"""The quota check under concurrency, on each backend: creates racing for the last slots
of a project's quota never take it past its limit."""

from __future__ import annotations

import threading
import uuid

from sqlalchemy import Engine

from cellar.db import instances as repo
from cellar.db import quotas
from cellar.db.engine import make_session_factory, transaction
from cellar.db.migrate import upgrade
from cellar.domain.errors import QuotaExceeded

POSTGRESQL_15 = "8f7c3b1e-0c5e-4c55-9d8e-5f0a3a3d1015"
DEFAULTS = {"instances": 10, "ram": -1, "volumes": 40, "backups": 50}


def test_racing_creates_stop_at_the_limit(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    sessions = make_session_factory(empty_engine)
    with transaction(sessions) as session:
        quotas.set_limits(session, project_id="p1", values={"instances": 3})

    start = threading.Barrier(8)
    outcomes: list[str] = []

    def create() -> None:
        start.wait()
        try:
            with transaction(sessions) as session:
                quotas.check(session, project_id="p1", defaults=DEFAULTS, instances=1, volumes=1)
                repo.create_instance(
                    session,
                    id=str(uuid.uuid4()),
                    tenant_id="p1",
                    name="db",
                    flavor_id="1",
                    volume_size=1,
                    datastore_version_id=POSTGRESQL_15,
                )
            outcomes.append("created")
        except QuotaExceeded as exc:
            outcomes.append(exc.message)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert (
        sorted(outcomes) == ["Quota exceeded for resources: ['instances']."] * 5 + ["created"] * 3
    )
    with transaction(sessions) as session:
        assert quotas.usage(session, project_id="p1") == {
            "instances": 3,
            "ram": 3 * 512,
            "volumes": 3,
            "backups": 0,
        }
        assert quotas.usage(session, project_id="p2")["instances"] == 0
