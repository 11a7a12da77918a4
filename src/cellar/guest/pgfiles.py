"""The files of a PostgreSQL cluster that the agent writes (its settings, who may connect
and how) and reads (is the postmaster alive?)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

SUPERUSER = "postgres"
REPLICATION_USER = "cellar_replicator"  # cellar.domain.replication's
# cellar's settings, included from postgresql.conf.
CONF = "cellar.conf"
# A configuration group's values, included from cellar.conf between the flavor-sized
# defaults (which a group may change) and the settings cellar manages (which it may not:
# in a postgresql.conf file the last value of a setting wins).
OVERRIDES = "cellar-overrides.conf"
OVERRIDES_INCLUDE = f"include_if_exists '{OVERRIDES}'"
# A Unix socket path longer than this does not fit in sockaddr_un (108 bytes with NUL).
_MAX_SOCKET_PATH = 100

# Through the socket (a directory only postgres and root may enter) the superuser comes
# in by peer authentication, mapped from the system users in `pg_ident`; everyone else,
# there or over the network, with a password. The security group decides who reaches
# the port at all.
# The replication role streams WAL (`replication`) and pg_rewind reads files through the
# `postgres` database, from any address the security group lets in (the group's peers).
PG_HBA = (
    "# Written by the cellar guest agent; the security group decides who gets here.\n"
    f"local all {SUPERUSER} peer map=cellar\n"
    f"host replication {REPLICATION_USER} 0.0.0.0/0 scram-sha-256\n"
    f"host replication {REPLICATION_USER} ::/0 scram-sha-256\n"
    f"host postgres {REPLICATION_USER} 0.0.0.0/0 scram-sha-256\n"
    f"host postgres {REPLICATION_USER} ::/0 scram-sha-256\n"
    "local all all scram-sha-256\n"
    "host all all 0.0.0.0/0 scram-sha-256\n"
    "host all all ::/0 scram-sha-256\n"
)


def pg_ident(system_users: Iterable[str]) -> str:
    return "".join(f"cellar {name} {SUPERUSER}\n" for name in sorted(set(system_users)))


def memory_settings(ram_mb: int) -> dict[str, str]:
    """Settings sized by the flavor: a quarter of the memory for shared buffers, three
    quarters assumed available as cache, and a modest connection limit."""
    return {
        "shared_buffers": f"{max(16, ram_mb // 4)}MB",
        "effective_cache_size": f"{max(32, ram_mb * 3 // 4)}MB",
        "max_connections": str(min(100, max(20, ram_mb // 10))),
    }


# Members of a replication group all allow this many connections: a hot standby refuses
# to run with fewer than its primary, and any member may become the primary.
GROUP_MAX_CONNECTIONS = 100


def replication_settings(volume_bytes: int) -> dict[str, str]:
    """What streaming replication and pg_rewind need, on every server (any may become a
    primary, or a standby). A slot may hold back at most a quarter of the volume's size
    (at least 64 MB): past that the primary drops the WAL a lagging replica still needs
    (that replica must then be rebuilt) rather than fill its own volume. Every server
    keeps its last sixteenth of the volume of WAL (16 MB to 1 GB) without any slot: a
    former primary rewound by pg_rewind needs its WAL back to the last checkpoint it
    shares with the new primary."""
    keep_mb = max(64, volume_bytes // 4 >> 20)
    recent_mb = min(1024, max(16, volume_bytes // 16 >> 20))
    return {
        "wal_level": "replica",
        "max_wal_senders": "10",
        "max_replication_slots": "10",
        "max_slot_wal_keep_size": f"{keep_mb}MB",
        "wal_keep_size": f"{recent_mb}MB",
        "wal_log_hints": "on",
        "hot_standby": "on",
    }


def quote(value: str) -> str:
    """A setting's value as a postgresql.conf string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def cellar_conf(
    address: str,
    port: int,
    socket_dir: Path,
    ram_mb: int,
    *,
    volume_bytes: int,
    group: bool,
    extra: dict[str, str] | None = None,
) -> str:
    """cellar.conf; `extra`: more settings, values as written (WAL archiving's)."""
    settings = {
        "listen_addresses": quote(address),
        "port": str(port),
        "unix_socket_directories": quote(str(socket_dir)),
        "unix_socket_permissions": "0700",
        "password_encryption": "'scram-sha-256'",
        # A start after a crash, or a restored server's first, syncs the data directory
        # first: one syncfs of the server's own volume rather than an fsync per file.
        "recovery_init_sync_method": "syncfs",
        **memory_settings(ram_mb),
        **replication_settings(volume_bytes),
    }
    if group:
        settings["max_connections"] = str(GROUP_MAX_CONNECTIONS)
    settings.update(extra or {})
    header = "# Written by the cellar guest agent: address, port and memory from the flavor."
    return arranged(
        "\n".join([header, *(f"{name} = {value}" for name, value in settings.items()), ""])
    )


def arranged(text: str) -> str:
    """cellar.conf's `text` in its order: comments, the flavor-sized defaults, the include
    of a configuration group's overrides, then everything cellar manages (a cellar.conf
    written before configuration groups gets the include here)."""
    lines = [line for line in text.splitlines() if line.strip() and line != OVERRIDES_INCLUDE]
    comments = [line for line in lines if line.lstrip().startswith("#")]
    settings = [line for line in lines if not line.lstrip().startswith("#")]
    tunable = set(memory_settings(64))
    defaults = [line for line in settings if line.split("=", 1)[0].strip() in tunable]
    managed = [line for line in settings if line not in defaults]
    return "\n".join([*comments, *defaults, OVERRIDES_INCLUDE, *managed, ""])


def overrides_conf(values: dict[str, str]) -> str:
    """The overrides file: a configuration group's values, each quoted."""
    header = "# A configuration group's values, written by the cellar guest agent."
    return "\n".join([header, *(f"{name} = {quote(v)}" for name, v in sorted(values.items())), ""])


def conninfo(**values: str | int) -> str:
    """A libpq connection string, each value quoted."""

    def one(value: str | int) -> str:
        return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"

    return " ".join(f"{key}={one(value)}" for key, value in values.items())


def pgpass(user: str, password: str) -> str:
    """A libpq password file line for `user` on any host, port and database."""
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    return f"*:*:*:{user}:{escaped}\n"


def with_auto_settings(text: str, settings: dict[str, str | None]) -> str:
    """postgresql.auto.conf's `text` with `settings` replaced (a None value removes one)."""
    kept = [line for line in text.splitlines() if line.split("=", 1)[0].strip() not in settings]
    added = [f"{name} = {quote(value)}" for name, value in settings.items() if value is not None]
    return "\n".join([*kept, *added, ""])


def socket_dir_for(data_dir: Path, port: int) -> Path:
    """`<data_dir>/run` when the socket's path fits in a socket address, else a short
    directory under /tmp named after the data directory."""
    preferred = data_dir / "run"
    if len(str(preferred / f".s.PGSQL.{port}")) <= _MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return Path("/tmp") / f"cellar-pg-{digest}"


def postmaster_pid(pgdata: Path) -> int | None:
    """The pid in postmaster.pid (present while a postmaster runs, and after it crashed)."""
    try:
        return int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid: int) -> bool:
    """Whether `pid` is a live postgres process (a zombie is dead: a killed postmaster
    stays one until PID 1 reaps it, which may take seconds)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 1 :]
    return rest.split()[0] not in ("Z", "X") and name.startswith(("postgres", "postmaster"))


def cluster_processes(pgdata: Path) -> list[int]:
    """Live postgres processes working in `pgdata` (every server process of a cluster has
    it as its working directory): after a postmaster died, its orphaned children until
    they notice and exit."""
    target = str(pgdata.resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "cwd") == target and alive(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def log_tail(log: Path, lines: int = 5) -> str:
    """The server log's last FATAL/PANIC/LOG lines (never STATEMENT lines: they may quote
    a password)."""
    try:
        text = log.read_text(errors="replace").splitlines()[-50:]
    except OSError:
        return "no server log"
    kept = [line for line in text if any(k in line for k in ("FATAL:", "PANIC:", "LOG:"))]
    return " | ".join(kept[-lines:]) or "see the server log"
