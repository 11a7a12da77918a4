"""A configuration group's values on a real PostgreSQL 15 (the guest's `update_overrides`
and `unassign_configuration`): dynamic settings SHOWn at once after the reload, a
restart-only one pending (PostgreSQL's own `pending_restart`) until the restart, the
defaults back after an unassign, and cellar's managed settings never overridden."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellar.guest.manager import GuestCommandError
from cellar.guest.pgfiles import CONF, OVERRIDES, OVERRIDES_INCLUDE
from cellar.guest.pgoverrides import parse_overrides
from cellar.guest.postgresql import PostgreSQL
from guest.helpers import free_port, needs_real_postgres
from guest.test_postgresql import manager, request


def show(pg: PostgreSQL, name: str) -> str:
    with pg.connect() as conn:
        row = conn.execute(f"SHOW {name}").fetchone()
    assert row is not None
    return str(row[0])


@needs_real_postgres
def test_dynamic_at_once_restart_only_after_restart_defaults_back(data_dir: Path) -> None:
    port = free_port()
    pg = manager(data_dir, port)
    pg.prepare(request(port, databases=(), users=()))
    conf = (data_dir / "pgdata" / CONF).read_text().splitlines()
    # The group's file comes after the flavor's defaults, before what cellar manages.
    include = conf.index(OVERRIDES_INCLUDE)
    assert conf.index(next(x for x in conf if x.startswith("shared_buffers"))) < include
    assert conf.index(next(x for x in conf if x.startswith("port"))) > include
    default_mem = show(pg, "shared_buffers")

    pending = pg.update_overrides(
        {"work_mem": "8MB", "statement_timeout": "5s", "shared_buffers": "48MB"}
    )
    assert pending == ["shared_buffers"]
    assert show(pg, "work_mem") == "8MB"
    assert show(pg, "statement_timeout") == "5s"
    assert show(pg, "shared_buffers") == default_mem  # until the restart
    values = pg.configuration()
    assert values["work_mem"] == "8MB" and values["port"] == str(port)

    pg.restart()
    assert show(pg, "shared_buffers") == "48MB"
    assert pg.update_overrides({"work_mem": "8MB", "statement_timeout": "5s",
                                "shared_buffers": "48MB"}) == []  # fmt: skip

    # A value PostgreSQL refuses changes nothing (it would stop the next start).
    with pytest.raises(GuestCommandError, match="timezone"):
        pg.update_overrides({"timezone": "Mars/Olympus_Mons", "work_mem": "1MB"})
    assert show(pg, "work_mem") == "8MB"
    assert "shared_buffers = '48MB'" in (data_dir / "pgdata" / OVERRIDES).read_text()

    pending = pg.update_overrides({})
    assert pending == ["shared_buffers"]
    assert not (data_dir / "pgdata" / OVERRIDES).exists()
    assert show(pg, "work_mem") == "4MB"  # PostgreSQL's default
    assert show(pg, "statement_timeout") == "0"
    pg.restart()
    assert show(pg, "shared_buffers") == default_mem
    assert pg.update_overrides({}) == []


def test_the_agent_refuses_what_cellar_manages() -> None:
    with pytest.raises(ValueError, match="port"):
        parse_overrides({"values": {"port": "1"}})
    with pytest.raises(ValueError, match="archive_command"):
        parse_overrides({"values": {"archive_command": "true"}})
    with pytest.raises(ValueError, match="one-line"):
        parse_overrides({"values": {"work_mem": "1MB\nport = 1"}})
    with pytest.raises(ValueError, match="setting name"):
        parse_overrides({"values": {"work_mem = 1\nport": "1"}})
    assert parse_overrides({"values": {"work_mem": "1MB"}}) == {"work_mem": "1MB"}
