"""The Alembic migrations, on SQLite and PostgreSQL: they round-trip and match the models."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Engine, Integer, MetaData, inspect, select

from cellar.db.engine import make_session_factory, transaction
from cellar.db.migrate import alembic_config, downgrade, upgrade
from cellar.db.models import Base, Datastore, DatastoreVersion, Flavor


def _head(engine: Engine) -> str:
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    assert head is not None
    return head


def _current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _schema_diff(engine: Engine, metadata: MetaData = Base.metadata) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, metadata))


def test_upgrade_downgrade_upgrade(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    assert _current(empty_engine) == _head(empty_engine)
    tables = set(inspect(empty_engine).get_table_names())
    assert set(Base.metadata.tables) <= tables

    downgrade(empty_engine, "base")
    assert _current(empty_engine) is None
    assert set(inspect(empty_engine).get_table_names()) <= {"alembic_version"}

    upgrade(empty_engine)
    assert _current(empty_engine) == _head(empty_engine)
    assert _schema_diff(empty_engine) == []


def test_schema_matches_models(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    assert _schema_diff(empty_engine) == []


def test_schema_comparison_sees_a_difference(empty_engine: Engine) -> None:
    """The check above is not vacuous: a column the migrations lack is reported."""
    upgrade(empty_engine)
    changed = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["jobs"].append_column(Column("priority", Integer, nullable=True))
    diff = _schema_diff(empty_engine, changed)
    assert [(d[0], d[3].name) for d in diff] == [("add_column", "priority")]


def test_default_catalog(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    with transaction(make_session_factory(empty_engine)) as s:
        flavors = {f.id: (f.name, f.ram_mb, f.vcpus) for f in s.scalars(select(Flavor))}
        assert flavors == {
            "1": ("m1.tiny", 512, 1),
            "2": ("m1.small", 1024, 1),
            "3": ("m1.medium", 2048, 2),
            "4": ("m1.large", 4096, 2),
        }
        datastore = s.scalars(select(Datastore).where(Datastore.name == "postgresql")).one()
        versions = list(
            s.scalars(select(DatastoreVersion).where(DatastoreVersion.datastore_id == datastore.id))
        )
        assert [(v.name, v.manager, v.active) for v in versions] == [("15", "postgresql", True)]
        assert datastore.default_version_id == versions[0].id
        assert versions[0].ports.split(",") == ["5432"]


def test_downgrade_removes_the_catalog(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    downgrade(empty_engine, "0001")
    with transaction(make_session_factory(empty_engine)) as s:
        assert list(s.scalars(select(Flavor))) == []
        assert list(s.scalars(select(Datastore))) == []
        assert list(s.scalars(select(DatastoreVersion))) == []
