"""A throwaway PostgreSQL 15 server for the test session.

`start_server()` makes a data directory under /dev/shm or /tmp, runs `initdb` and
`pg_ctl start` on a free port of 127.0.0.1, and returns a `Server`; `Server.stop()`
stops it (immediate mode) and removes the directory. As root the server runs as the
`postgres` user (initdb refuses root), otherwise as the current user.
`unavailable_reason()` says why no server can be started here, or None.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

PG_BIN = Path(os.environ.get("CELLAR_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "postgres"
TEST_DATABASE = "cellar_test"


def _run_as() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix that runs a server binary, and the account it runs as if not us."""
    if os.geteuid() != 0:
        return [], None
    return ["runuser", "-u", "postgres", "--"], pwd.getpwnam("postgres")


def unavailable_reason() -> str | None:
    missing = [b for b in ("initdb", "pg_ctl", "postgres") if not (PG_BIN / b).is_file()]
    if missing:
        return (
            f"PostgreSQL server binaries not found in {PG_BIN} ({', '.join(missing)}): "
            "install the Debian package postgresql (scripts/install-system-deps.sh)"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and there is no postgres user to run initdb as"
        if shutil.which("runuser") is None:
            return "running as root, and runuser (util-linux) is missing"
    return None


def _scratch_parent() -> str:
    """/dev/shm when it has room (CREATE DATABASE is 20 times faster on tmpfs), else /tmp.

    Not $TMPDIR: root's temporary directory may be closed to the postgres user.
    """
    try:
        shm = os.statvfs("/dev/shm")
        if shm.f_bavail * shm.f_frsize >= 1 << 30 and os.access("/dev/shm", os.W_OK):
            return "/dev/shm"
    except OSError:
        pass
    return "/tmp"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    base: Path
    port: int
    prefix: list[str] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def log(self) -> Path:
        return self.base / "postgres.log"

    def url(self, database: str = TEST_DATABASE) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit connection to the `postgres` database (CREATE/DROP DATABASE)."""
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True
        )

    def create_database(self, name: str) -> str:
        with self.admin() as conn:
            conn.execute(
                f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' STRATEGY FILE_COPY"
            )
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def pg(self, binary: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.prefix, str(PG_BIN / binary), *args],
            cwd=self.base,  # the caller's directory may be closed to the postgres user
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def stop(self) -> None:
        """Stop the server (immediate mode, as after a crash) and remove its directory."""
        try:
            if (self.data / "postmaster.pid").exists():
                try:
                    done = self.pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
                    stopped = done.returncode == 0
                except subprocess.TimeoutExpired:
                    stopped = False
                if not stopped:
                    self._kill_postmaster()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def _kill_postmaster(self) -> None:
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGQUIT)
        except (OSError, ValueError, IndexError):
            pass

    def _fail(self, what: str, done: subprocess.CompletedProcess[str]) -> RuntimeError:
        log = self.log.read_text(errors="replace") if self.log.exists() else ""
        return RuntimeError(
            f"{what} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}{log}"
        )


def start_server(attempts: int = 3) -> Server:
    """Start a fresh server with an empty `cellar_test` database (retrying a taken port)."""
    prefix, account = _run_as()
    base = Path(tempfile.mkdtemp(prefix="cellar-pg-", dir=_scratch_parent()))
    server = Server(base=base, port=0, prefix=prefix)
    try:
        (base / "sock").mkdir()
        if account is not None:
            for path in (base, base / "sock"):
                os.chown(path, account.pw_uid, account.pw_gid)
        done = server.pg(
            "initdb", "-D", str(server.data), "-A", "trust", "-U", SUPERUSER,
            "--no-locale", "-E", "UTF8", "--no-sync", "--no-instructions",
        )  # fmt: skip
        if done.returncode != 0:
            raise server._fail("initdb", done)
        for _ in range(attempts):
            server.port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {server.port} -k {base / 'sock'} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c wal_level=minimal -c max_wal_senders=0"
            )
            done = server.pg(
                "pg_ctl", "-D", str(server.data), "-l", str(server.log), "-w", "-t", "60",
                "-o", options, "start",
            )  # fmt: skip
            if done.returncode == 0:
                break
        else:
            raise server._fail("pg_ctl start", done)
        server.create_database(TEST_DATABASE)
    except BaseException:
        server.stop()
        raise
    return server


def new_database_name() -> str:
    return f"cellar_{uuid.uuid4().hex}"
