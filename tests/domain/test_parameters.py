"""The parameter catalogue: generated from PostgreSQL 15's own pg_settings (regenerated
here on a real server and compared with the checked-in file), and the checks of values."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from cellar.domain.errors import BadRequest, UnprocessableEntity
from cellar.domain.parameters import DENIED, check_values, denial, load_catalogue

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "src" / "cellar" / "domain" / "data" / "postgresql-15.json"
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _script() -> Any:
    spec = importlib.util.spec_from_file_location(
        "generate_pg_parameters", ROOT / "scripts" / "generate_pg_parameters.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not (PG_BIN / "initdb").is_file(), reason="PostgreSQL 15 not installed")
def test_the_checked_in_catalogue_is_what_postgresql_15_says() -> None:
    script = _script()
    assert script.render("15", script.read_settings("15")) == DATA.read_text()


def test_the_catalogue_fixes_what_troves_file_gets_wrong() -> None:
    catalogue = load_catalogue("postgresql", "15")
    assert catalogue is not None
    assert catalogue["max_worker_processes"].restart_required
    assert catalogue["dynamic_shared_memory_type"].restart_required
    assert not catalogue["work_mem"].restart_required
    assert catalogue["random_page_cost"].type == "float"
    assert "remote_apply" in catalogue["synchronous_commit"].enumvals
    for gone in ("wal_keep_segments", "default_with_oids", "sql_inheritance"):
        assert gone not in catalogue
    raw = {e["name"] for e in json.loads(DATA.read_text())["parameters"]}
    for name in ("archive_command", "port", "listen_addresses", "data_directory",
                 "ssl_key_file", "unix_socket_directories", "primary_conninfo"):  # fmt: skip
        assert name in raw and name not in catalogue and denial(name)
    assert all(reason for reason in DENIED.values())


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"work_mem": "64MB"}, {"work_mem": "64MB"}),
        ({"Work_Mem": 65536}, {"work_mem": "65536"}),
        ({"statement_timeout": "5min"}, {"statement_timeout": "5min"}),
        ({"jit": False, "autovacuum": "on"}, {"jit": "off", "autovacuum": "on"}),
        ({"synchronous_commit": "REMOTE_APPLY"}, {"synchronous_commit": "remote_apply"}),
        ({"random_page_cost": 1.5}, {"random_page_cost": "1.5"}),
        ({"search_path": "app, public"}, {"search_path": "app, public"}),
    ],
)
def test_good_values_as_postgresql_conf_takes_them(
    values: dict[str, Any], expected: dict[str, str]
) -> None:
    catalogue = load_catalogue("postgresql", "15")
    assert catalogue is not None
    assert check_values(catalogue, values) == expected


def test_bad_values_name_the_parameter_and_the_range() -> None:
    catalogue = load_catalogue("postgresql", "15")
    assert catalogue is not None
    with pytest.raises(BadRequest) as caught:
        check_values(catalogue, {"max_connections": 1_000_000})
    assert caught.value.field == "values.max_connections"
    assert "from 1 to 262143" in caught.value.message
    with pytest.raises(BadRequest, match="unit 'MB' is not accepted"):
        check_values(catalogue, {"statement_timeout": "5MB"})
    for huge in (10**400, "1e400", float("nan"), float("inf")):
        with pytest.raises(BadRequest, match="from 64 to"):
            check_values(catalogue, {"work_mem": huge})
    with pytest.raises(BadRequest, match="one line"):
        check_values(catalogue, {"search_path": "a\nport = 1"})
    with pytest.raises(UnprocessableEntity, match="archive_command may not be set"):
        check_values(catalogue, {"archive_command": "true"})
