"""Fixtures of the API tests: a migrated SQLite database, the app, tokens, and resource
managers registered for the test (so that these tests do not depend on any real one).

No task manager runs here: tests look at the responses and at the rows and jobs written.
"""

from __future__ import annotations

import shutil
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.helpers import Api, ApiWithManager, MakeApi, manager_supporting
from cellar import resource_managers
from cellar.api import create_app
from cellar.config import Settings
from cellar.db.engine import make_engine, make_session_factory, transaction
from cellar.db.migrate import upgrade
from cellar.db.tokens import issue_token
from cellar.resource_managers.base import Operation, ResourceManager

RegisterManager = Callable[[str, type[ResourceManager]], None]


@pytest.fixture
def register_manager(monkeypatch: pytest.MonkeyPatch) -> RegisterManager:
    """Register `cls` under `name` in the resource-manager registry, for one test."""

    def register(name: str, cls: type[ResourceManager]) -> None:
        module_name = f"_cellar_api_test_manager_{name}"
        module = types.ModuleType(module_name)
        setattr(module, cls.__name__, cls)
        monkeypatch.setitem(sys.modules, module_name, module)
        monkeypatch.setitem(resource_managers._REGISTRY, name, (module_name, cls.__name__))

    return register


@pytest.fixture(autouse=True)
def native_manager(register_manager: RegisterManager) -> None:
    """`native` supports every operation here (the real one is tested elsewhere)."""
    register_manager("native", manager_supporting("native", set(Operation)))


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session; each test gets a copy."""
    path = tmp_path_factory.mktemp("migrated") / "cellar.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # the last connection's close checkpoints the WAL into the file
    return path


@pytest.fixture
def engine(tmp_path: Path, migrated_database: Path) -> Iterator[Engine]:
    path = tmp_path / "cellar.sqlite"
    shutil.copyfile(migrated_database, path)
    engine = make_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def settings(tmp_path: Path, engine: Engine) -> Settings:
    return Settings(state_dir=tmp_path, database_url=str(engine.url), dns_zone="db.test")


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    # As a context manager, the client keeps one event loop for all its requests.
    with TestClient(create_app(settings, engine=engine)) as client:
        yield client


@pytest.fixture
def make_api(client: TestClient, sessions: sessionmaker[Session]) -> MakeApi:
    def make(project: str, *, admin: bool = False) -> Api:
        with transaction(sessions) as session:
            token = issue_token(session, project_id=project, is_admin=admin)
        return Api(client, project, token)

    return make


@pytest.fixture
def api(make_api: MakeApi) -> Api:
    return make_api("p1")


@pytest.fixture
def api_with_manager(
    register_manager: RegisterManager,
    settings: Settings,
    engine: Engine,
    sessions: sessionmaker[Session],
) -> Iterator[ApiWithManager]:
    """An API client for project p1 on an app whose resource manager is `cls`."""
    with ExitStack() as stack:

        def make(cls: type[ResourceManager]) -> Api:
            register_manager(cls.name, cls)
            app = create_app(settings.with_(resource_manager=cls.name), engine=engine)
            with transaction(sessions) as session:
                token = issue_token(session, project_id="p1")
            return Api(stack.enter_context(TestClient(app)), "p1", token)

        yield make
