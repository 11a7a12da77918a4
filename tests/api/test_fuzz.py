"""Every route of the API, fuzzed from cellar's own OpenAPI document (schemathesis): no
request, however odd its path, query or body, gets a 5xx. Requests go to the project of
a valid token (half of them an administrator's), and half of the ids in paths name
objects that exist (an instance, a backup, a configuration group, a cluster), so that
the handlers past the 404 are reached too.

Schemathesis's pytest plugin does not run on this pytest; its operations are driven by
Hypothesis directly."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings

from cellar.api.app import create_app
from cellar.config import settings_from_env
from cellar.db.engine import make_engine, make_session_factory, transaction
from cellar.db.migrate import upgrade
from cellar.db.tokens import issue_token

EXAMPLES_PER_OPERATION = 15
PROJECT = "p1"


def _seed(client: TestClient) -> dict[str, str]:
    """Objects for the paths' ids: an instance, a configuration group, a cluster."""
    made: dict[str, str] = {}
    r = client.post(
        f"/v1.0/{PROJECT}/instances",
        json={"instance": {"name": "fuzzed", "flavorRef": "1", "volume": {"size": 1}}},
    )
    assert r.status_code == 200, r.text
    made["instance_id"] = r.json()["instance"]["id"]
    r = client.post(
        f"/v1.0/{PROJECT}/configurations",
        json={"configuration": {"name": "fuzzed", "values": {"work_mem": "8MB"}}},
    )
    assert r.status_code == 200, r.text
    made["configuration_id"] = r.json()["configuration"]["id"]
    body = {"cluster": {"name": "fuzzed", "instances": [{"flavorRef": "1", "volume": {"size": 1}}]}}
    r = client.post(f"/v1.0/{PROJECT}/clusters", json=body)
    assert r.status_code == 200, r.text
    made["cluster_id"] = r.json()["cluster"]["id"]
    return made


def test_no_request_gets_a_server_error(tmp_path: Path) -> None:
    settings = settings_from_env(env={}, state_dir=tmp_path, backend="fake", fake_latency_s=0.0)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    with transaction(make_session_factory(engine)) as session:
        tokens = [
            issue_token(session, project_id=PROJECT),
            issue_token(session, project_id=PROJECT, is_admin=True),
        ]
    app = create_app(settings, engine=engine)
    with TestClient(app, headers={"X-Auth-Token": tokens[0]}) as client:
        existing = _seed(client)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    errors: list[tuple[str, str, Any, int, str]] = []
    codes: Counter[int] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 50, len(operations)

    for operation in operations:

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            n = sum(codes.values())
            parameters = case.path_parameters or {}
            if "tenant_id" in parameters:
                parameters["tenant_id"] = PROJECT
            if n % 2:
                for name, value in existing.items():
                    if name in parameters:
                        parameters[name] = value
            response = case.call(headers={"X-Auth-Token": tokens[n // 2 % 2]})
            codes[response.status_code] += 1
            if response.status_code >= 500:
                body = getattr(case, "body", None)
                errors.append(
                    (case.method, case.formatted_path, body, response.status_code, response.text)
                )

        run()
    print(f"{sum(codes.values())} requests over {len(operations)} operations: {dict(codes)}")
    assert not errors, errors[:5]
    # The handlers were reached, not only the doors.
    assert codes[200] + codes[202] > 100 and codes[400] > 100, codes
