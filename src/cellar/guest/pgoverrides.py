"""A configuration group's values on a PostgreSQL server: written to their own file
(`pgfiles.OVERRIDES`, included from cellar.conf before the settings cellar manages),
taken at once by a reload where PostgreSQL allows it; what waits for a restart is what
PostgreSQL itself says is pending (`pg_settings.pending_restart`)."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import psycopg

from cellar.domain.parameters import denial
from cellar.domain.status import ServiceStatus
from cellar.guest.manager import GuestCommandError
from cellar.guest.pgfiles import CONF, OVERRIDES, arranged, overrides_conf

if TYPE_CHECKING:
    from cellar.guest.postgresql import PostgreSQL

_NAME = re.compile(r"^[a-z_][a-z0-9_.]{0,62}$")
# How long a reload may take to reach new sessions.
RELOAD_WAIT_S = 10.0


def parse_overrides(body: object) -> dict[str, str]:
    """`{"values": {name: value}}`, names and values strings; a name cellar manages is
    refused here too (the control plane checks first)."""
    values = body.get("values") if isinstance(body, dict) else None
    if not isinstance(values, dict):
        raise ValueError("values: must be an object of setting names and values")
    for name, value in values.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"values: {name!r} is not a setting name")
        if not isinstance(value, str) or any(c in value for c in "\n\r\x00"):
            raise ValueError(f"values.{name}: must be a one-line string")
        reason = denial(name)
        if reason is not None:
            raise ValueError(f"values.{name}: may not be set: {reason}")
    return dict(values)


class PgOverrides:
    def __init__(self, pg: PostgreSQL) -> None:
        self.pg = pg

    def apply(self, values: dict[str, str]) -> list[str]:
        """Make `values` the group's (replacing the last ones; empty: none, every setting
        back to cellar's or PostgreSQL's default) and reload; returns the settings whose
        new value waits for a restart."""
        pgdata = self.pg.pgdata
        conf = pgdata / CONF
        self.pg._write(conf, arranged(conf.read_text()))
        target = pgdata / OVERRIDES
        previous = target.read_text() if target.exists() else None
        if values:
            self.pg._write(target, overrides_conf(values))
        else:
            target.unlink(missing_ok=True)
        if self.pg.status() is not ServiceStatus.RUNNING:
            return []  # a stopped server takes them all when it starts
        refused = self._refused()
        if refused:  # the last values stay: a bad one would stop the next start
            if previous is None:
                target.unlink(missing_ok=True)
            else:
                self.pg._write(target, previous)
            raise GuestCommandError(f"PostgreSQL refuses {refused}")
        return self._reload()

    def _refused(self) -> str | None:
        """What PostgreSQL refuses in the overrides file, read afresh (`pg_file_settings`)."""
        try:
            with self.pg.connect() as conn:
                # A restart-only setting's new value is "not applied" too: only the
                # others' errors are refusals (the control plane checks those by type).
                rows = conn.execute(
                    "SELECT f.name, f.setting, f.error FROM pg_file_settings f "
                    "LEFT JOIN pg_settings s ON s.name = f.name "
                    "WHERE f.error IS NOT NULL AND f.sourcefile LIKE %s "
                    "AND s.context IS DISTINCT FROM 'postmaster' ORDER BY f.seqno",
                    (f"%/{OVERRIDES}",),
                ).fetchall()
        except psycopg.Error as exc:
            message = exc.diag.message_primary or type(exc).__name__
            raise GuestCommandError(f"Reading the settings failed: {message}") from None
        return "; ".join(f"{name} = {setting!r} ({error})" for name, setting, error in rows) or None

    def _reload(self) -> list[str]:
        try:
            with self.pg.connect() as conn:
                before = conn.execute("SELECT pg_conf_load_time()").fetchone()
                conn.execute("SELECT pg_reload_conf()")
            deadline = time.monotonic() + RELOAD_WAIT_S
            while True:
                # A new session starts from the postmaster's settings once it reloaded.
                with self.pg.connect() as conn:
                    loaded = conn.execute("SELECT pg_conf_load_time()").fetchone()
                    if loaded != before or time.monotonic() > deadline:
                        rows = conn.execute(
                            "SELECT name FROM pg_settings WHERE pending_restart ORDER BY name"
                        ).fetchall()
                        return [str(r[0]) for r in rows]
                time.sleep(0.05)
        except psycopg.Error as exc:
            message = exc.diag.message_primary or type(exc).__name__
            raise GuestCommandError(f"Reloading the settings failed: {message}") from None

    def in_force(self) -> dict[str, str]:
        """The settings not at PostgreSQL's own default, as the server runs them."""
        try:
            with self.pg.connect() as conn:
                rows = conn.execute(
                    "SELECT name, current_setting(name) FROM pg_settings "
                    "WHERE source = 'configuration file' ORDER BY name"
                ).fetchall()
        except psycopg.Error as exc:
            message = exc.diag.message_primary or type(exc).__name__
            raise GuestCommandError(f"Reading the settings failed: {message}") from None
        return {str(name): str(value) for name, value in rows}
