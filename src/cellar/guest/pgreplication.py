"""Streaming replication of one PostgreSQL server: a replica's copy of its primary, where
its WAL stands, promotion, following another primary, slots.

A standby is a data directory with `standby.signal` and, in postgresql.auto.conf,
`primary_conninfo` (its primary, as the replication role, `application_name` = its slot)
and `primary_slot_name`: PostgreSQL keeps both across restarts, so a rebooted replica
comes back as a replica with nothing of the agent's. The replication role's password is
in a libpq password file beside the data directory (`PASSFILE`, 0600, the owner's), named
by the conninfo: it is never on a command line, in the environment of a logged command or
in a setting anyone can SHOW.

Slots: a standby's slot on its primary is made by the standby's own guest, as the
replication role (`pg_create_physical_replication_slot`, allowed to REPLICATION roles), before
it copies (`prepare`) or follows: one way for both, and a retried prepare finds its slot.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from cellar.domain.replication import (
    REPLICATION_USER,
    ReplicaLag,
    ReplicationSpec,
    ReplicationStatus,
    Role,
    lsn_to_int,
)
from cellar.guest.manager import GuestCommandError, GuestConflict
from cellar.guest.pgfiles import (
    CONF,
    alive,
    conninfo,
    pgpass,
    postmaster_pid,
    with_auto_settings,
)

if TYPE_CHECKING:
    from cellar.guest.postgresql import PostgreSQL

log = logging.getLogger("cellar.guest")

PASSFILE = "replication.pgpass"
AUTO_CONF = "postgresql.auto.conf"
STANDBY_SIGNAL = "standby.signal"
# The server's own files, kept across pg_rewind (which copies the source's).
OWN_FILES = (CONF, "postgresql.conf", "pg_hba.conf", "pg_ident.conf")
# How long a standby gets to stream from its (new) primary after `follow`.
STREAM_WAIT_S = 60.0
PROMOTE_WAIT_S = 60

_REPLICAS = """
SELECT s.slot_name, s.active, host(r.client_addr), r.state,
       pg_wal_lsn_diff(pg_current_wal_lsn(), coalesce(r.replay_lsn, s.restart_lsn))::bigint
FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
WHERE s.slot_type = 'physical' ORDER BY s.slot_name
"""


def _failure(what: str, exc: psycopg.Error) -> GuestCommandError:
    # Only the primary message: the full text may quote a statement.
    return GuestCommandError(f"{what} failed: {exc.diag.message_primary or exc}")


class PgReplication:
    def __init__(self, pg: PostgreSQL) -> None:
        self.pg = pg

    @property
    def passfile(self) -> Path:
        return self.pg.data_dir / PASSFILE

    def _primary(self, spec: ReplicationSpec) -> dict[str, Any]:
        """What libpq needs to reach `spec`'s primary as the replication role."""
        return {
            "host": spec.primary_address or "",
            "port": spec.primary_port,
            "user": REPLICATION_USER,
            "passfile": str(self.passfile),
            "connect_timeout": 10,
        }

    def _write_passfile(self, password: str) -> None:
        self.pg._write(self.passfile, pgpass(REPLICATION_USER, password))

    def _ensure_slot(self, spec: ReplicationSpec) -> None:
        """`spec.slot` on the primary, made if missing (WAL reserved from now on)."""
        try:
            with psycopg.connect(dbname="postgres", autocommit=True, **self._primary(spec)) as c:
                c.execute(
                    "SELECT pg_create_physical_replication_slot(%s, true) WHERE NOT EXISTS"
                    " (SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)",
                    (spec.slot, spec.slot),
                )
        except psycopg.errors.DuplicateObject:
            pass  # made meanwhile (a retried command)
        except psycopg.Error as exc:
            where = f"{spec.primary_address}:{spec.primary_port}"
            raise _failure(f"Making slot {spec.slot} on the primary at {where}", exc) from None

    def _point_at(self, spec: ReplicationSpec) -> None:
        """Make the (stopped or running) data directory a standby of `spec`'s primary."""
        info = conninfo(**self._primary(spec), application_name=spec.slot or "")
        auto = self.pg.pgdata / AUTO_CONF
        text = auto.read_text() if auto.exists() else ""
        changes: dict[str, str | None] = {"primary_conninfo": info, "primary_slot_name": spec.slot}
        self.pg._write(auto, with_auto_settings(text, changes))
        self.pg._write(self.pg.pgdata / STANDBY_SIGNAL, "")

    # Prepare.

    def clone(self, spec: ReplicationSpec) -> None:
        """The primary's data directory copied through the replica's slot, as a standby
        (the caller writes the replica's own settings and starts it)."""
        self._write_passfile(spec.password)
        self._ensure_slot(spec)
        done = self.pg._run(
            "pg_basebackup", "-h", spec.primary_address or "", "-p", str(spec.primary_port),
            "-U", REPLICATION_USER, "-D", str(self.pg.pgdata), "-X", "stream",
            "-S", spec.slot or "", "--checkpoint=fast", "--no-password",
            env={"PGPASSFILE": str(self.passfile), "PGAPPNAME": spec.slot or ""},
            timeout=3600,
        )  # fmt: skip
        self.pg._check("pg_basebackup", done)
        self._point_at(spec)

    # Commands.

    def _in_recovery(self, conn: psycopg.Connection[tuple[object, ...]]) -> bool:
        row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        return bool(row and row[0])

    def status(self) -> ReplicationStatus:
        try:
            with self.pg.connect() as conn:
                if self._in_recovery(conn):
                    row = conn.execute(
                        "SELECT pg_last_wal_replay_lsn()::text, pg_last_wal_receive_lsn()::text,"
                        " coalesce((SELECT received_tli FROM pg_stat_wal_receiver),"
                        " (SELECT timeline_id FROM pg_control_checkpoint()))"
                    ).fetchone()
                    assert row is not None
                    replay, receive, timeline = row
                    return ReplicationStatus(
                        Role.REPLICA,
                        lsn=lsn_to_int(str(replay or "0/0")),
                        timeline=int(str(timeline)),
                        receive_lsn=None if receive is None else lsn_to_int(str(receive)),
                    )
                row = conn.execute(
                    "SELECT pg_current_wal_lsn()::text, pg_walfile_name(pg_current_wal_lsn())"
                ).fetchone()
                assert row is not None
                replicas = conn.execute(_REPLICAS).fetchall()
        except psycopg.Error as exc:
            raise _failure("Reading the replication status", exc) from None
        return ReplicationStatus(
            Role.PRIMARY,
            lsn=lsn_to_int(str(row[0])),
            timeline=int(str(row[1])[:8], 16),  # a WAL file's name starts with its timeline
            replicas=tuple(
                ReplicaLag(
                    slot=str(slot),
                    active=bool(active),
                    address=None if address is None else str(address),
                    state=None if state is None else str(state),
                    lag_bytes=None if lag is None else int(str(lag)),
                )
                for slot, active, address, state, lag in replicas
            ),
        )

    def promote(self) -> None:
        """pg_promote, waiting until the server takes writes; then it forgets its primary."""
        try:
            with self.pg.connect() as conn:
                if not self._in_recovery(conn):
                    raise GuestConflict("The datastore is a primary already: nothing to promote.")
                row = conn.execute("SELECT pg_promote(true, %s)", (PROMOTE_WAIT_S,)).fetchone()
                if not (row and row[0]):
                    raise GuestCommandError(f"The promotion did not end in {PROMOTE_WAIT_S} s.")
                # pg_rewind reads a source's timeline from its control file, which a fast
                # promotion updates at its next checkpoint only: a former primary following
                # this one right away would be found "on the same timeline", not rewound.
                conn.execute("CHECKPOINT")
                auto = self.pg.pgdata / AUTO_CONF
                forget = dict.fromkeys(("primary_conninfo", "primary_slot_name"))
                self.pg._write(auto, with_auto_settings(auto.read_text(), forget))
                conn.execute("SELECT pg_reload_conf()")
        except psycopg.Error as exc:
            raise _failure("Promoting", exc) from None

    def follow(self, spec: ReplicationSpec) -> None:
        """A running standby is re-pointed (primary_conninfo is reloadable); anything else
        (a primary, running or stopped) is stopped cleanly, rewound to the new primary's
        timeline, made its standby and started. Returns once it streams from it."""
        self._write_passfile(spec.password)
        self._ensure_slot(spec)
        running_standby = False
        if self.pg.accepting():
            try:
                with self.pg.connect() as conn:
                    running_standby = self._in_recovery(conn)
            except psycopg.Error as exc:
                raise _failure("Reading the datastore's role", exc) from None
        if running_standby:
            self._point_at(spec)
            with self.pg.connect() as conn:
                conn.execute("SELECT pg_reload_conf()")
        else:
            self.pg.stop()
            self._rewind(spec)
            self._point_at(spec)
            self.pg.start()
        self._wait_streaming(spec)

    def _rewind(self, spec: ReplicationSpec) -> None:
        """pg_rewind from the new primary (nothing to do, and quick, when this server
        stopped before the primary's timeline forked from it), or a new copy of it when
        the rewind fails; the server's own settings are put back over the source's."""
        own = {name: (self.pg.pgdata / name).read_text() for name in OWN_FILES}
        # A standby that did not stop cleanly is recovered by pg_rewind in single-user
        # mode, which refuses standby mode; `_point_at` makes it a standby again.
        (self.pg.pgdata / STANDBY_SIGNAL).unlink(missing_ok=True)
        source = conninfo(**self._primary(spec), dbname="postgres")
        done = self.pg._run(
            "pg_rewind", "--target-pgdata", str(self.pg.pgdata), "--source-server", source,
            env={"LC_ALL": "C"}, timeout=3600,
        )  # fmt: skip
        if done.returncode != 0:
            # Most often the target no longer has the WAL back to the last checkpoint the
            # two share (recycled: `wal_keep_size` bounds what is kept): what it held
            # beyond the fork would be discarded anyway, so copy the primary afresh.
            detail = (done.stderr or done.stdout).strip().splitlines()[-1:]
            log.warning("pg_rewind failed (%s); copying the primary afresh", " ".join(detail))
            self.pg.discard()
            self.clone(spec)
        for name, text in own.items():
            self.pg._write(self.pg.pgdata / name, text)

    def _wait_streaming(self, spec: ReplicationSpec) -> None:
        deadline = time.monotonic() + STREAM_WAIT_S
        seen: object = None
        while time.monotonic() < deadline:
            try:
                with self.pg.connect() as conn:
                    seen = conn.execute(
                        "SELECT status, sender_host FROM pg_stat_wal_receiver"
                    ).fetchone()
            except psycopg.Error as exc:
                seen = exc.diag.message_primary
            if seen == ("streaming", spec.primary_address):
                return
            time.sleep(0.05)
        raise GuestCommandError(
            f"The standby does not stream from {spec.primary_address}:{spec.primary_port} "
            f"after {STREAM_WAIT_S:g} s (last seen: {seen})."
        )

    def drop_slot(self, slot: str) -> None:
        """Drop `slot`, ending the walsender that uses it, if any; nothing if absent."""
        deadline = time.monotonic() + 10
        try:
            with self.pg.connect() as conn:
                while True:
                    row = conn.execute(
                        "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s",
                        (slot,),
                    ).fetchone()
                    if row is None:
                        return
                    if row[0] is not None:
                        conn.execute("SELECT pg_terminate_backend(%s)", (row[0],))
                    try:
                        conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                        return
                    except psycopg.errors.UndefinedObject:
                        return
                    except psycopg.errors.ObjectInUse:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.05)  # its walsender is still exiting
        except psycopg.Error as exc:
            raise _failure(f"Dropping slot {slot}", exc) from None

    def stopped_lsn(self) -> int:
        """The last checkpoint's position of a cleanly stopped server (its control file)."""
        pid = postmaster_pid(self.pg.pgdata)
        if pid is not None and alive(pid):
            raise GuestConflict("The datastore is running: it has no stopped position.")
        done = self.pg._run("pg_controldata", "-D", str(self.pg.pgdata), env={"LC_ALL": "C"})
        self.pg._check("pg_controldata", done)
        fields = dict(
            (key.strip(), value.strip())
            for key, _, value in (line.partition(":") for line in done.stdout.splitlines())
        )
        state = fields.get("Database cluster state", "")
        if state not in ("shut down", "shut down in recovery"):
            raise GuestConflict(f"The datastore was not stopped cleanly (its state: {state}).")
        return lsn_to_int(fields["Latest checkpoint location"])
