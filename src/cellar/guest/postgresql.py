"""PostgreSQL inside a server: one cluster in `<data_dir>/pgdata` on the server's volume.

The server binaries are Debian's (`/usr/lib/postgresql/<version>/bin`); they run as the
`postgres` account (initdb refuses root). The cluster listens on the server's address and
on a Unix socket in a directory only `postgres` (and root) may enter; the agent reaches it
through that socket as the `postgres` superuser by peer authentication (root and postgres
are mapped to it), everyone else needs a password (scram-sha-256) and the network path
the security group leaves open.

Status, as Trove's guests tell it: accepting connections is RUNNING; a live postmaster
that does not accept them (starting, recovering, hung) is BLOCKED; a postmaster.pid left
by a postmaster that is gone is CRASHED (a clean stop removes it), unless the agent was
asked to stop the datastore; no postmaster at all is SHUTDOWN. While the agent itself
starts or stops the cluster it is SHUTDOWN until it accepts connections.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psycopg

from cellar.domain.backups import RepositoryAccess
from cellar.domain.replication import ReplicationSpec, ReplicationStatus, Role
from cellar.domain.status import ServiceStatus
from cellar.guest.manager import (
    DatastoreManager,
    GuestCommandError,
    GuestConflict,
    PrepareRequest,
)
from cellar.guest.pgbackrest import PgBackRest
from cellar.guest.pgfiles import (
    CONF,
    OVERRIDES,
    PG_HBA,
    SUPERUSER,
    alive,
    cellar_conf,
    cluster_processes,
    log_tail,
    pg_ident,
    postmaster_pid,
    socket_dir_for,
    with_auto_settings,
)
from cellar.guest.pgoverrides import PgOverrides
from cellar.guest.pgreplication import AUTO_CONF, PgReplication
from cellar.guest.pgsetup import create_objects, create_replication_role, set_superuser_password
from cellar.guest.pgusers import PgAccounts

PG_ROOT = Path("/usr/lib/postgresql")
PGDATA = "pgdata"
LOG = "postgresql.log"
PG_CTL_WAIT_S = 60
# How long a restored server may replay its WAL before it must take writes.
RECOVERY_WAIT_S = 3600
# How long the children of a crashed postmaster get to exit on their own.
ORPHANS_WAIT_S = 5.0


class PostgreSQL(DatastoreManager):
    datastore = "postgresql"
    superuser = SUPERUSER

    def __init__(
        self,
        data_dir: Path,
        *,
        address: str,
        version: str,
        port: int,
        os_user: str = SUPERUSER,
        pg_root: Path = PG_ROOT,
    ) -> None:
        super().__init__(data_dir, address=address, version=version, port=port)
        self.bin = pg_root / version / "bin"
        self.pgdata = data_dir / PGDATA
        self.log = data_dir / LOG
        self.socket_dir = socket_dir_for(data_dir, port)
        self.as_root = os.geteuid() == 0
        self.account = pwd.getpwnam(os_user) if self.as_root else pwd.getpwuid(os.geteuid())
        self._busy = False  # the agent is starting or stopping the cluster
        self._stopped = False  # the last command was a stop
        self.replication = PgReplication(self)
        self.backrest = PgBackRest(self)
        self.overrides = PgOverrides(self)

    # Running the server's programs.

    def _run(
        self,
        binary: str,
        *args: str,
        timeout: float = 120,
        as_owner: bool = True,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run one of the server's programs, as the cluster's owner unless `as_owner` is
        false (pg_isready needs no account, and runuser costs a PAM session per call),
        with the agent's environment but its PG* variables, plus `env`."""
        prefix = ["runuser", "-u", self.account.pw_name, "--"] if self.as_root and as_owner else []
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("PG")}, **(env or {})}
        try:
            return subprocess.run(
                [*prefix, str(self.bin / binary), *args],
                cwd=self.data_dir if self.data_dir.is_dir() else "/",
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise GuestCommandError(f"{binary} did not finish in {timeout:g} s") from exc

    def _check(self, what: str, done: subprocess.CompletedProcess[str]) -> None:
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip()[-2000:]
            raise GuestCommandError(f"{what} failed (exit {done.returncode}): {detail}")

    def _own(self, path: Path, mode: int | None = None) -> None:
        if mode is not None:
            path.chmod(mode)
        if self.as_root:
            os.chown(path, self.account.pw_uid, self.account.pw_gid)

    def _write(self, path: Path, text: str) -> None:
        path.write_text(text)
        self._own(path, 0o600)

    # Status.

    def accepting(self) -> bool:
        if not (self.bin / "pg_isready").is_file():
            return False
        done = self._run(
            "pg_isready", "-q", "-h", str(self.socket_dir), "-p", str(self.port), "-t", "3",
            as_owner=False,
        )  # fmt: skip
        return done.returncode == 0

    def status(self) -> ServiceStatus:
        if self.accepting():
            return ServiceStatus.RUNNING
        if self._busy:
            return ServiceStatus.SHUTDOWN
        pid = postmaster_pid(self.pgdata)
        if pid is None:
            return ServiceStatus.SHUTDOWN
        if alive(pid):
            return ServiceStatus.BLOCKED
        return ServiceStatus.SHUTDOWN if self._stopped else ServiceStatus.CRASHED

    # Commands.

    def start(self) -> None:
        self._start()
        self.backrest.ensure_server()

    def _start(self) -> None:
        self._stopped, self._busy = False, True
        try:
            if self.accepting():
                return
            pid = postmaster_pid(self.pgdata)
            if pid is not None and alive(pid):
                self._wait_accepting()  # already starting or recovering
                return
            if pid is not None:
                self._clear_orphans()
            done = self._run(
                "pg_ctl", "-D", str(self.pgdata), "-l", str(self.log),
                "-w", "-t", str(PG_CTL_WAIT_S), "start",
            )  # fmt: skip
            if done.returncode != 0:
                raise GuestCommandError(f"pg_ctl start failed: {log_tail(self.log)}")
        finally:
            self._busy = False

    def _clear_orphans(self) -> None:
        """After a crash: wait for the dead postmaster's children to exit (they hold its
        shared memory, and a new postmaster refuses to start beside them), then kill
        those left."""
        deadline = time.monotonic() + ORPHANS_WAIT_S
        while (pids := cluster_processes(self.pgdata)) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        while cluster_processes(self.pgdata) and time.monotonic() < deadline + 5:
            time.sleep(0.05)
        # The lock files name the dead postmaster, which may linger as a zombie until PID 1
        # reaps it: PostgreSQL would take it for a live server and refuse to start.
        lock = self.socket_dir / f".s.PGSQL.{self.port}"
        for stale in (self.pgdata / "postmaster.pid", lock.with_name(lock.name + ".lock"), lock):
            stale.unlink(missing_ok=True)

    def _wait_accepting(self) -> None:
        deadline = time.monotonic() + PG_CTL_WAIT_S
        while not self.accepting():
            if time.monotonic() > deadline:
                raise GuestCommandError(
                    f"PostgreSQL did not accept connections in {PG_CTL_WAIT_S} s"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        self._stopped, self._busy = True, True
        # The backup server's logs and locks are on the volume: a stopped datastore keeps
        # nothing open there (its volume may be detached next); `start` brings it back.
        self.backrest.stop_server()
        try:
            pid = postmaster_pid(self.pgdata)
            if pid is None or not alive(pid):
                return
            done = self._run(
                "pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", str(PG_CTL_WAIT_S),
                "stop",
            )  # fmt: skip
            if done.returncode != 0 and alive(pid):  # else it died meanwhile: it is down
                self._check("pg_ctl stop", done)
        finally:
            self._busy = False

    def restart(self) -> None:
        self.stop()
        self.start()

    def keep_running(self) -> None:
        """The backup server beside a running datastore, started again if it died (the
        repository's host takes backups through it; a backup it was serving failed)."""
        backrest = self.backrest
        if self._stopped or self._busy or not backrest.serves() or backrest.running():
            return
        if self.accepting():
            backrest.ensure_server()

    # Prepare.

    def prepare(self, request: PrepareRequest) -> str | None:
        """initdb, or for a replica a copy of its primary (`pg_basebackup`: its databases,
        users and superuser are the primary's; its settings are its own)."""
        if not (self.bin / "initdb").is_file():
            raise GuestCommandError(
                f"PostgreSQL {self.version} is not installed on this server (no {self.bin})."
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._own(self.data_dir, 0o755)
        self._check_reachable()
        if self.pgdata.exists():  # what an interrupted prepare left
            self.discard()
        replication = request.replication
        if request.repository is not None:
            restore_stanza = None if request.restore is None else request.restore.stanza
            self.backrest.configure(request.repository, restore_stanza)
        if request.restore is not None:
            return self._restore(request)
        if replication is not None and replication.role is Role.REPLICA:
            self.replication.clone(replication)
            self._configure(request, fresh=False)
            self.start()
            return None
        done = self._run(
            "initdb", "-D", str(self.pgdata), "-U", SUPERUSER, "-E", "UTF8", "--no-locale",
            "--auth-local=peer", "--auth-host=scram-sha-256", "--no-instructions",
            # Page checksums: PostgreSQL checks each page it reads, and pgBackRest each
            # page it backs up (which is what makes a backup set checked as it is taken).
            "--data-checksums",
        )  # fmt: skip
        self._check("initdb", done)
        self._configure(request, fresh=True)
        self.start()
        password = secrets.token_urlsafe(24)
        try:
            create_objects(self.connect, request, password)
            if replication is not None:
                create_replication_role(self.connect, replication.password)
        except psycopg.Error as exc:
            # Only the primary message: the full text may quote the statement.
            message = exc.diag.message_primary or type(exc).__name__
            raise GuestCommandError(f"Setting up PostgreSQL failed: {message}") from None
        return password

    def _restore(self, request: PrepareRequest) -> str:
        """A copy of another instance's stanza instead of initdb: its databases and users,
        this server's own settings (its own stanza to archive into) and a new superuser
        password; returns once it has promoted itself onto a timeline of its own."""
        assert request.restore is not None
        # The TLS server first: it needs no database, and is up by the time the
        # repository's host creates this server's stanza.
        self.backrest.ensure_server()
        self.backrest.restore(request.restore)
        # The source's configuration group is not this instance's (a create may name one).
        (self.pgdata / OVERRIDES).unlink(missing_ok=True)
        self._configure(request, fresh=False)
        # Recovery without hot standby: a hot standby refuses WAL written by a server
        # with more connections, WAL senders or slots than its own settings allow (a
        # replication group's member, a larger flavor): "recovery aborted because of
        # insufficient parameter settings". Nobody reads this server before it promotes.
        auto = self.pgdata / AUTO_CONF
        original = auto.read_text() if auto.exists() else ""
        self._write(auto, with_auto_settings(original, {"hot_standby": "off"}))
        self._start()
        self._wait_promoted()
        self._write(auto, with_auto_settings(auto.read_text(), {"hot_standby": None}))
        password = secrets.token_urlsafe(24)
        try:
            set_superuser_password(self.connect, password)
        except psycopg.Error as exc:
            message = exc.diag.message_primary or type(exc).__name__
            raise GuestCommandError(f"Setting up PostgreSQL failed: {message}") from None
        return password

    def _wait_promoted(self) -> None:
        """Until recovery has reached its target and the server takes writes."""
        deadline = time.monotonic() + RECOVERY_WAIT_S
        while time.monotonic() < deadline:
            pid = postmaster_pid(self.pgdata)
            if pid is None or not alive(pid):
                raise GuestCommandError(f"The restored server stopped: {log_tail(self.log)}")
            with contextlib.suppress(psycopg.Error), self.connect() as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                if row is not None and row[0] is False:
                    return
            time.sleep(0.1)
        raise GuestCommandError(f"The restore did not end in {RECOVERY_WAIT_S} s.")

    def _check_reachable(self) -> None:
        """The cluster's owner must reach the data directory: every parent must let it pass."""
        if not self.as_root:
            return
        name = self.account.pw_name
        probe = ["runuser", "-u", name, "--", "test", "-w", str(self.data_dir)]
        if subprocess.run(probe, cwd="/", capture_output=True, check=False).returncode != 0:
            raise GuestCommandError(
                f"The {name} account cannot reach {self.data_dir}: a parent directory is "
                "closed to it (a private home directory?); keep the cloud's state elsewhere."
            )

    def discard(self) -> None:
        """Stop whatever runs on `pgdata` and remove it."""
        self.backrest.stop_server()
        pid = postmaster_pid(self.pgdata)
        if pid is not None and alive(pid):
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.pgdata, ignore_errors=True)

    def _configure(self, request: PrepareRequest, *, fresh: bool) -> None:
        """This server's own settings; `fresh`: after initdb (a copy of a primary has
        postgresql.conf's include of cellar.conf already, and the primary's cellar.conf,
        which this one replaces)."""
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._own(self.socket_dir, 0o700)
        volume_bytes = self.filesystem()["size_bytes"]
        conf = cellar_conf(
            self.address, self.port, self.socket_dir, request.ram_mb,
            volume_bytes=volume_bytes, group=request.replication is not None,
            extra=self.backrest.archive_settings(),
        )  # fmt: skip
        self._write(self.pgdata / CONF, conf)
        if fresh:
            with (self.pgdata / "postgresql.conf").open("a") as main:
                main.write(f"\ninclude '{CONF}'\n")
        self._write(self.pgdata / "pg_hba.conf", PG_HBA)
        system_users = {"root", self.account.pw_name, pwd.getpwuid(os.geteuid()).pw_name}
        self._write(self.pgdata / "pg_ident.conf", pg_ident(system_users))

    def enable_root(self, password: str | None = None) -> str:
        password = password or secrets.token_urlsafe(24)
        try:
            set_superuser_password(self.connect, password)
        except psycopg.Error as exc:
            message = exc.diag.message_primary or type(exc).__name__
            raise GuestCommandError(f"Setting the superuser's password failed: {message}") from None
        return password

    def accounts(self) -> PgAccounts:
        return PgAccounts(self.connect)

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """The superuser's connection through the Unix socket (autocommit)."""
        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user=SUPERUSER,
            dbname=dbname,
            autocommit=True,
            connect_timeout=10,
        )

    # Configuration groups (`pgoverrides.py`).

    def update_overrides(self, values: dict[str, str]) -> list[str]:
        return self.overrides.apply(values)

    def configuration(self) -> dict[str, str]:
        return self.overrides.in_force()

    # Replication (`pgreplication.py`).

    def replication_status(self) -> ReplicationStatus:
        return self.replication.status()

    def archive_into(self, repository: RepositoryAccess) -> None:
        """WAL from now on into `repository`'s stanza (a replica about to leave its
        group, whose stanza holds the group's timelines, gets one of its own before it
        is promoted): pgBackRest's configuration, the archive_command (reloaded) and
        the TLS server for the repository's host, whose allowed stanza changed."""
        self.backrest.stop_server()
        self.backrest.configure(repository)
        command = self.backrest.archive_command()
        if command is not None:
            conf = self.pgdata / CONF
            self._write(conf, with_auto_settings(conf.read_text(), {"archive_command": command}))
            if self.status() is ServiceStatus.RUNNING:
                try:
                    with self.connect() as conn:
                        conn.execute("SELECT pg_reload_conf()")
                except psycopg.Error as exc:
                    raise GuestCommandError(f"Reloading the settings failed: {exc}") from None
        self.backrest.ensure_server()

    def promote(self) -> None:
        self.replication.promote()

    def follow(self, replication: ReplicationSpec) -> None:
        self.replication.follow(replication)

    def make_source(self, password: str) -> None:
        """The replication role on a primary prepared alone (idempotent)."""
        if self.replication.status().role is not Role.PRIMARY:
            raise GuestConflict("The datastore is a replica: replicas stream from its primary.")
        try:
            create_replication_role(self.connect, password)
        except psycopg.Error as exc:
            message = exc.diag.message_primary or type(exc).__name__
            raise GuestCommandError(f"Making the replication role failed: {message}") from None

    def drop_slot(self, slot: str) -> None:
        self.replication.drop_slot(slot)

    def stopped_lsn(self) -> int:
        return self.replication.stopped_lsn()
