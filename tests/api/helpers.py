"""Helpers of the API tests: a client for one token and project, and shortcuts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from taskflow.patterns import linear_flow

from cellar.db import instances as repo
from cellar.db.engine import transaction
from cellar.db.models import Job
from cellar.domain.status import InstanceTask
from cellar.resource_managers.base import Operation, ResourceManager


def _empty_flow(operation: Operation) -> Callable[..., linear_flow.Flow]:
    def method(self: ResourceManager, *args: Any) -> linear_flow.Flow:
        return linear_flow.Flow(operation.value)

    return method


def manager_supporting(name: str, operations: set[Operation]) -> type[ResourceManager]:
    """A manager implementing `operations` (each as an empty flow) and nothing else."""
    methods = {op.value: _empty_flow(op) for op in operations}
    return type(f"Manager_{name}", (ResourceManager,), {"name": name, **methods})


@dataclass
class Api:
    """A client acting as one token in one project's path (`/v1.0/{tenant}`)."""

    client: TestClient
    tenant: str
    token: str | None

    def _call(self, method: str, path: str, **kwargs: Any) -> Response:
        headers = dict(kwargs.pop("headers", {}))
        if self.token:
            headers["X-Auth-Token"] = self.token
        url = f"/v1.0/{self.tenant}{path}"
        response: Response = self.client.request(method, url, headers=headers, **kwargs)
        return response

    def get(self, path: str, **kwargs: Any) -> Response:
        return self._call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Response:
        return self._call("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Response:
        return self._call("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Response:
        return self._call("DELETE", path, **kwargs)

    def as_tenant(self, tenant: str) -> Api:
        return Api(self.client, tenant, self.token)


MakeApi = Callable[..., Api]
ApiWithManager = Callable[[type[ResourceManager]], Api]


def create_body(**instance: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "db1", "flavorRef": "2", "volume": {"size": 2}}
    body.update(instance)
    return {"instance": body}


def create(api: Api, **instance: Any) -> dict[str, Any]:
    response = api.post("/instances", json=create_body(**instance))
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()["instance"]
    return view


def make_active(sessions: sessionmaker[Session], instance_id: str) -> None:
    """What a finished provisioning leaves: server ACTIVE, datastore RUNNING, task NONE."""
    with transaction(sessions) as session:
        repo.update_instance(
            session, instance_id=instance_id, server_status="ACTIVE", service_status="RUNNING"
        )
        repo.change_task(session, instance_id=instance_id, target=InstanceTask.NONE)


def jobs(sessions: sessionmaker[Session], instance_id: str | None = None) -> list[Job]:
    with transaction(sessions) as session:
        query = select(Job).order_by(Job.created, Job.id)
        if instance_id is not None:
            query = query.where(Job.instance_id == instance_id)
        return list(session.scalars(query))


def fault_of(response: Response, key: str, code: int) -> str:
    """The message of a Trove fault body, after checking its key and code."""
    assert response.status_code == code, response.text
    body = response.json()
    assert list(body) == [key], body
    assert body[key]["code"] == code
    message: str = body[key]["message"]
    return message
