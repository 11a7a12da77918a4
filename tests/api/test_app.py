"""The app factory, the versions root, and the one error-to-HTTP map."""

from __future__ import annotations

import importlib
import logging
import sys

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.helpers import Api, fault_of
from cellar.api import create_app
from cellar.api.errors import STATUS_OF, status_of
from cellar.config import Settings
from cellar.domain import errors


def test_importing_the_api_builds_no_app_and_no_engine() -> None:
    importlib.import_module("cellar.api")
    modules = [m for name, m in sys.modules.items() if name.startswith("cellar.api")]
    assert len(modules) > 10
    built = [
        f"{module.__name__}.{name}"
        for module in modules
        for name, value in vars(module).items()
        if isinstance(value, FastAPI | Engine)
    ]
    assert built == []


def test_versions_need_no_token(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    (version,) = response.json()["versions"]
    assert version["id"] == "v1.0"
    assert version["status"] == "CURRENT"
    assert version["links"] == [{"href": "http://testserver/v1.0/", "rel": "self"}]


def test_unknown_resource_manager_is_refused_at_start(settings: Settings, engine: Engine) -> None:
    with pytest.raises(ValueError, match="unknown manager 'nonesuch'"):
        create_app(settings.with_(resource_manager="nonesuch"), engine=engine)


def test_unknown_path_is_an_item_not_found_fault(api: Api) -> None:
    assert "/v1.0/p1/nothing" in fault_of(api.get("/nothing"), "itemNotFound", 404)


def test_wrong_method_is_a_bad_method_fault(api: Api) -> None:
    assert "PATCH" in fault_of(api.client.patch("/v1.0/p1/flavors"), "badMethod", 405)


def test_unexpected_error_is_a_generic_500_and_is_logged(
    settings: Settings, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings, engine=engine)

    def boom() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/boom", boom)
    client = TestClient(app, raise_server_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="cellar.api.errors"):
        response = client.get("/boom")
    message = fault_of(response, "instanceFault", 500)
    assert "secret" not in message
    assert "secret internals" in caplog.text


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.BadRequest("f", "bad"), 400),
        (errors.Unauthorized("no"), 401),
        (errors.Forbidden("no"), 403),
        (errors.NotFound("Instance", "x"), 404),
        (errors.Conflict("race"), 409),
        (errors.UnprocessableEntity("state"), 422),
        (errors.InvalidTransition("task", "A", "B"), 422),
        (errors.OperationIsNotSupported("reboot", "m"), 501),
        (errors.TransientError("later"), 503),
        (errors.CellarError("unmapped"), 500),
    ],
)
def test_every_error_family_has_one_status(error: errors.CellarError, status: int) -> None:
    assert status_of(error) == status


def test_the_map_covers_every_family_of_the_domain() -> None:
    families = {
        cls
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.CellarError)
    }
    mapped = {family for family, _ in STATUS_OF}
    unmapped = {f for f in families - mapped if not any(issubclass(f, m) for m in mapped)}
    assert unmapped == {errors.CellarError}
