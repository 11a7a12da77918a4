"""An empty database of each backend: a SQLite file, and a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from cellar.db.engine import make_engine

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty database, without any migration applied."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'cellar.sqlite'}"
    else:
        url = request.getfixturevalue("fresh_postgres_url")
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
