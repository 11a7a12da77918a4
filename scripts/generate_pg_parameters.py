#!/usr/bin/env python3
"""Write cellar's parameter catalogue for PostgreSQL from the server's own `pg_settings`.

    scripts/generate_pg_parameters.py [--version 15] [--output PATH]

Makes a throwaway cluster (initdb in a temporary directory; as root, run as the
`postgres` account), starts it on a Unix socket only, reads `pg_settings`, stops it and
writes `src/cellar/domain/data/postgresql-<version>.json`. The deny-list is applied when
the catalogue is loaded (`cellar.domain.parameters.DENIED`), not here: the file is what
the server says, and `tests/domain/test_parameters_data.py` regenerates it and compares.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from cellar.domain.parameters import data_file, rows_to_data

QUERY = "SELECT name, context, vartype, unit, min_val, max_val, enumvals FROM pg_settings"
OUTPUT_DIR = Path(__file__).resolve().parent.parent / "src" / "cellar" / "domain" / "data"


def read_settings(version: str) -> list[dict[str, Any]]:
    """`pg_settings` of a fresh cluster of PostgreSQL `version`."""
    bindir = Path(f"/usr/lib/postgresql/{version}/bin")
    prefix: list[str] = []
    account = None
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    scratch = Path(tempfile.mkdtemp(prefix="cellar-pgsettings-", dir="/tmp"))
    try:
        if account is not None:
            os.chown(scratch, account.pw_uid, account.pw_gid)
        pgdata, sockets = scratch / "data", scratch
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}

        def run(*args: str) -> None:
            subprocess.run([*prefix, *args], check=True, capture_output=True, env=env, cwd="/")

        run(str(bindir / "initdb"), "-D", str(pgdata), "-U", "postgres", "--no-locale",
            "-E", "UTF8", "--auth=trust")  # fmt: skip
        options = f"-c listen_addresses='' -c unix_socket_directories='{sockets}' -p 5432"
        log = str(scratch / "server.log")  # the server's output, not our pipe
        run(str(bindir / "pg_ctl"), "-D", str(pgdata), "-o", options, "-l", log, "-w", "start")
        try:
            with psycopg.connect(
                host=str(sockets), port=5432, user="postgres", dbname="postgres"
            ) as conn:
                return list(conn.cursor(row_factory=dict_row).execute(QUERY).fetchall())
        finally:
            run(str(bindir / "pg_ctl"), "-D", str(pgdata), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def render(version: str, rows: list[dict[str, Any]]) -> str:
    data = {
        "datastore": "postgresql",
        "version": version,
        "source": "pg_settings of a fresh cluster (scripts/generate_pg_parameters.py)",
        "parameters": rows_to_data(rows),
    }
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", default="15")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    output = args.output or OUTPUT_DIR / data_file("postgresql", args.version)
    output.write_text(render(args.version, read_settings(args.version)))
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
