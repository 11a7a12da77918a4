"""Configuration parameters: the catalogue of what a configuration group may set, and the
check of a group's values against it.

The catalogue is generated from the datastore's own `pg_settings` (name, context,
vartype, min_val, max_val, enumvals, unit; `scripts/generate_pg_parameters.py` writes
`domain/data/postgresql-<version>.json`, and a test regenerates it on a real server and
compares), not copied from Trove's hand-written rules file (wrong restart flags, wrong
types, names PostgreSQL dropped). A parameter needs a restart when its context is
`postmaster`; every other settable context (`sighup`, `superuser`, `user`, ...) takes
effect on a reload. `internal` settings are read-only and never listed.

`DENIED` removes from the catalogue what a user must not set, each with its reason:
what cellar manages itself (where the server listens, replication, WAL archiving,
recovery), file paths and shell commands (they run or read anything as the `postgres`
account), and what would break the agent's own access.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from cellar.domain.errors import BadRequest, UnprocessableEntity

# What a user may not set, and why. Prefixes end with `*`.
DENIED: dict[str, str] = {
    # Where and how the server listens: the agent and the security group rely on them.
    "listen_addresses": "cellar binds the server to the instance's address",
    "port": "the datastore's port is fixed by its version (security group, DNS, clients)",
    "unix_socket_*": "the agent reaches the server through its own socket",
    "superuser_reserved_connections": "the agent needs its reserved superuser connections",
    # Files: a path makes the server read or write anything the postgres account can.
    "data_directory": "a file path: the data directory is on the instance's volume",
    "config_file": "a file path: cellar writes the server's configuration",
    "hba_file": "a file path: cellar writes who may connect (pg_hba.conf)",
    "ident_file": "a file path: cellar writes the system user map (pg_ident.conf)",
    "external_pid_file": "a file path",
    "ssl": "TLS needs certificate files on the server, which cellar does not manage yet",
    "ssl_*": "TLS files and settings are the operator's, not a user's",
    "log_directory": "a file path: the server log is where the agent reads it",
    "log_filename": "a file path: the server log is where the agent reads it",
    "logging_collector": "the agent reads the server's log where pg_ctl writes it",
    "log_destination": "the agent reads the server's log where pg_ctl writes it",
    "stats_temp_directory": "a file path",
    "krb_server_keyfile": "a file path",
    "dynamic_library_path": "a path: loads code into the server",
    "shared_preload_libraries": "loads code into the server at start: the operator's choice",
    "local_preload_libraries": "loads code into every session",
    "session_preload_libraries": "loads code into every session",
    "jit_provider": "names a library to load",
    "allow_system_table_mods": "lets the superuser break the catalog",
    "ignore_system_indexes": "a debugging switch that corrupts nothing but slows everything",
    "zero_damaged_pages": "silently destroys data on a checksum failure",
    "ignore_checksum_failure": "hides corruption that backups rely on checksums to catch",
    "ignore_invalid_pages": "hides corruption during recovery",
    "data_sync_retry": "PANIC-on-fsync-failure is what keeps data safe",
    "fsync": "turning it off loses data on a crash; backups and replicas assume it",
    "full_page_writes": "turning it off breaks crash safety and pg_rewind",
    "password_encryption": "cellar's pg_hba.conf accepts scram-sha-256 only",
    # WAL, archiving and recovery: backups and point-in-time restores rely on them.
    "archive_mode": "cellar archives WAL into the backup repository",
    "archive_command": "a shell command run as postgres; cellar sets it for the repository",
    "archive_library": "loads code; cellar archives with archive_command",
    "archive_timeout": "cellar bounds the restorable window's lag with it",
    "restore_command": "a shell command; cellar sets it for restores and replicas",
    "archive_cleanup_command": "a shell command run as postgres",
    "recovery_end_command": "a shell command run as postgres",
    "recovery_target*": "cellar sets the recovery target of a restore",
    "recovery_init_sync_method": "cellar syncs a restored data directory its own way",
    "wal_level": "replication and archiving need `replica`",
    "wal_log_hints": "pg_rewind needs it on a former primary",
    # Replication: cellar manages the group's streaming replication.
    "primary_conninfo": "cellar points a replica at its primary",
    "primary_slot_name": "cellar names each replica's slot",
    "promote_trigger_file": "a file path; cellar promotes through pg_promote",
    "hot_standby": "replicas serve reads; cellar turns it off only during a restore",
    "max_wal_senders": "cellar sizes it for the group's replicas",
    "max_replication_slots": "cellar sizes it for the group's replicas",
    "max_slot_wal_keep_size": "cellar bounds the WAL a slot may hold by the volume's size",
    "wal_keep_size": "cellar keeps what pg_rewind needs, by the volume's size",
    "synchronous_standby_names": "cellar decides which replicas are synchronous",
    "cluster_name": "cellar names the server",
    "event_source": "Windows only",
}


# A hot standby refuses to run with less of these than its primary has (PostgreSQL:
# "insufficient parameter settings"), and a group's members restart one at a time: on
# a replication group's members they stay cellar's, the same on every member.
STANDBY_LIMITS = frozenset(
    {"max_connections", "max_worker_processes", "max_prepared_transactions",
     "max_locks_per_transaction"}
)  # fmt: skip


@dataclass(frozen=True)
class Parameter:
    """One setting as `pg_settings` describes it."""

    name: str
    context: str
    vartype: str  # bool, integer, real, string, enum
    unit: str | None = None
    min: float | None = None
    max: float | None = None
    enumvals: tuple[str, ...] = ()

    @property
    def restart_required(self) -> bool:
        return self.context == "postmaster"

    @property
    def type(self) -> str:
        """Trove's data type: integer, float, boolean or string."""
        return {"bool": "boolean", "integer": "integer", "real": "float"}.get(
            self.vartype, "string"
        )


def denial(name: str) -> str | None:
    """Why `name` may not be set by a user, or None."""
    for pattern, reason in DENIED.items():
        if name == pattern or (pattern.endswith("*") and name.startswith(pattern[:-1])):
            return reason
    return None


def rows_to_data(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The data file's entries from `pg_settings` rows (columns name, context, vartype,
    unit, min_val, max_val, enumvals), sorted by name; `internal` ones left out."""
    entries = []
    for row in rows:
        if row["context"] == "internal":
            continue
        entry: dict[str, Any] = {
            "name": row["name"],
            "context": row["context"],
            "vartype": row["vartype"],
        }
        if row.get("unit"):
            entry["unit"] = row["unit"]
        if row["vartype"] in ("integer", "real"):
            entry["min"] = _number(row["min_val"], row["vartype"])
            entry["max"] = _number(row["max_val"], row["vartype"])
        if row["vartype"] == "enum":
            entry["enumvals"] = list(row["enumvals"] or [])
        entries.append(entry)
    return sorted(entries, key=lambda e: str(e["name"]))


def _number(text: Any, vartype: str) -> int | float:
    return int(text) if vartype == "integer" else float(text)


def data_file(datastore: str, version: str) -> str:
    return f"{datastore}-{version}.json"


def load_catalogue(datastore: str, version: str) -> dict[str, Parameter] | None:
    """The parameters a user may set on `datastore` `version`, by name; None when there
    is no catalogue for it (configuration groups are not supported there)."""
    path = resources.files("cellar.domain").joinpath("data", data_file(datastore, version))
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return {
        e["name"]: Parameter(
            name=e["name"],
            context=e["context"],
            vartype=e["vartype"],
            unit=e.get("unit"),
            min=e.get("min"),
            max=e.get("max"),
            enumvals=tuple(e.get("enumvals", ())),
        )
        for e in data["parameters"]
        if denial(e["name"]) is None
    }


# Units PostgreSQL accepts in a value, in bytes and in milliseconds.
_MEMORY: dict[str, float] = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_TIME: dict[str, float] = {
    "us": 0.001,
    "ms": 1,
    "s": 1000,
    "min": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
}
_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)\s*$")
_TRUE = {"on", "true", "yes", "1", "t", "y"}
_FALSE = {"off", "false", "no", "0", "f", "n"}


def _base(unit: str | None) -> tuple[dict[str, float], float] | None:
    """The unit table a parameter's unit belongs to, and its size in that table."""
    if not unit:
        return None
    match = re.fullmatch(r"(\d*)(\D+)", unit)
    if match is None:
        return None
    factor = float(match.group(1) or 1)
    name = match.group(2)
    for table in (_MEMORY, _TIME):
        if name in table:
            return table, factor * table[name]
    return None


def _range(p: Parameter) -> str:
    unit = f" (in {p.unit})" if p.unit else ""
    low = _fmt(p.min)
    high = _fmt(p.max)
    return f"a{'n integer' if p.vartype == 'integer' else ' number'} from {low} to {high}{unit}"


def _fmt(value: float | None) -> str:
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() else repr(value)


def check_value(p: Parameter, value: Any, field: str) -> str:
    """`value` as written into postgresql.conf, or BadRequest naming `field` and what is
    allowed."""
    if p.vartype == "bool":
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, (str, int)) and str(value).strip().lower() in _TRUE | _FALSE:
            return "on" if str(value).strip().lower() in _TRUE else "off"
        raise BadRequest(field, "must be true or false (on/off)")
    if p.vartype == "enum":
        text = ("on" if value else "off") if isinstance(value, bool) else value
        if isinstance(text, str) and text.strip().lower() in {v.lower() for v in p.enumvals}:
            return text.strip().lower()
        raise BadRequest(field, f"must be one of {', '.join(p.enumvals)}")
    if p.vartype == "string":
        if not isinstance(value, str):
            raise BadRequest(field, "must be a string")
        if any(c in value for c in "\n\r\x00"):
            raise BadRequest(field, "must be one line")
        return value
    return _check_number(p, value, field)


def _check_number(p: Parameter, value: Any, field: str) -> str:
    allowed = _range(p)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadRequest(field, f"must be {allowed}")
    if isinstance(value, (int, float)):
        try:
            number, unit = float(value), ""
        except OverflowError:  # an integer beyond any float
            raise BadRequest(field, f"must be {allowed}") from None
        text = str(value)
    else:
        match = _NUMBER.match(value)
        if match is None:
            raise BadRequest(field, f"must be {allowed}")
        number, unit = float(match.group(1)), match.group(2)
        text = value.strip()
    if not math.isfinite(number):
        raise BadRequest(field, f"must be {allowed}")
    if unit:
        base = _base(p.unit)
        if base is None or unit not in base[0]:
            units = ", ".join(base[0]) if base else "none"
            raise BadRequest(field, f"unit {unit!r} is not accepted (units: {units}); {allowed}")
        number = number * base[0][unit] / base[1]
    if p.vartype == "integer":
        number = float(round(number))
        if not unit and isinstance(value, (float, str)) and not float(number).is_integer():
            raise BadRequest(field, f"must be {allowed}")
    if (p.min is not None and number < p.min) or (p.max is not None and number > p.max):
        raise BadRequest(field, f"must be {allowed}; {text} is out of range")
    return text


def check_values(
    catalogue: Mapping[str, Parameter], values: Mapping[str, Any], field: str = "values"
) -> dict[str, str]:
    """A group's values, each checked: names lower-cased (Trove does), a name not in the
    catalogue (or denied) refused with 422 as Trove does, a bad value with a 400 naming
    the parameter and what it accepts. Returns the values as postgresql.conf takes them."""
    checked: dict[str, str] = {}
    for raw_name, value in values.items():
        name = raw_name.lower()
        reason = denial(name)
        if reason is not None:
            raise UnprocessableEntity(
                f"The configuration parameter {raw_name} may not be set: {reason}."
            )
        parameter = catalogue.get(name)
        if parameter is None:
            raise UnprocessableEntity(
                f"The configuration parameter {raw_name} is not supported for this datastore."
            )
        checked[name] = check_value(parameter, value, f"{field}.{name}")
    return checked


def restart_needed(catalogue: Mapping[str, Parameter], changed: Iterable[str]) -> list[str]:
    """The names among `changed` that take effect only on a restart."""
    return sorted(n for n in changed if n in catalogue and catalogue[n].restart_required)
