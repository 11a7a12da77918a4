"""Fixtures of the guest tests: scratch directories the `postgres` account can use, free
ports, and a migrated control-plane database with one instance in it."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from cellar.config import Settings
from cellar.db.engine import make_engine, make_session_factory
from cellar.db.migrate import upgrade
from guest.helpers import free_port, stop_cluster


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A server's data directory: short (the socket lives in it) and reachable by postgres
    (pytest's tmp_path is under root's private directory)."""
    base = Path(tempfile.mkdtemp(prefix="cg-", dir="/tmp"))
    base.chmod(0o755)
    try:
        yield base / "data"
    finally:
        stop_cluster(base / "data" / "pgdata")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    state = tmp_path / "state"
    return Settings(
        state_dir=state,
        database_url=f"sqlite:///{state / 'cellar.sqlite'}",
        api_port=free_port(),
        guest_heartbeat_timeout_s=60.0,
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)
