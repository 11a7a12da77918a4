"""Fixtures shared by every test package: a PostgreSQL server started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import pg


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[pg.Server]:
    reason = pg.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    server = pg.start_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: pg.Server) -> str:
    """`postgresql://postgres@127.0.0.1:<port>/cellar_test`, empty at the session's start."""
    return postgres_server.url()


@pytest.fixture
def fresh_postgres_url(postgres_server: pg.Server) -> Iterator[str]:
    """A new empty database (from template0) for one test, dropped after it."""
    name = pg.new_database_name()
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)
