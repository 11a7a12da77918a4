"""pgBackRest inside a server: WAL archiving into the cloud's repository, the TLS server
through which the repository's host takes backups, and restores at prepare.

The guest is given a `RepositoryAccess` at prepare (its stanza, pgBackRest options, the
certificate files): it writes them under `<data_dir>/pgbackrest/` (the configuration
`pgbackrest.conf`, each file 0600, all the cluster owner's), and PostgreSQL archives every
WAL segment through `pgbackrest archive-push` from its first start (`archive_settings`).

With `tls-server-*` options the guest also runs `pgbackrest server` as the cluster's
owner on its own address: pgBackRest takes backups on the repository's host only
("backup command must be run on the repository host", measured with 2.45), which reads
the data directory through this server; the server lets in only the client certificate
named by `tls-server-auth` (the cloud's), for this server's stanza only.

A restore (`RestoreTarget`) is `pgbackrest restore` of the source stanza into the empty
data directory, with `--target-action=promote`: to the end of a backup set
(`--type=immediate`), to an instant (`--type=time`), or to the end of the archived WAL.
The restored server then gets its own settings, including an `archive_command` into its
own stanza, before its first start: it never archives into its source's stanza (where
its new timeline's history file would divert a later restore of the source).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cellar.domain.backups import RepositoryAccess, RestoreTarget
from cellar.guest.manager import GuestCommandError
from cellar.guest.pgfiles import quote

if TYPE_CHECKING:
    from cellar.guest.postgresql import PostgreSQL

PGBACKREST = "pgbackrest"
DIRECTORY = "pgbackrest"
CONF = "pgbackrest.conf"
SERVER_PID = "server.pid"
ARCHIVE_TIMEOUT_S = 60
RESTORE_TIMEOUT_S = 3600
# Processes a restore uses (the servers have one or two cores).
PROCESS_MAX = 2


def _restore_args(target: RestoreTarget) -> list[str]:
    """To the end of the archive (PostgreSQL promotes there on its own), or to a target
    and then promote."""
    args = [f"--stanza={target.stanza}"]
    if target.label is not None:
        args.append(f"--set={target.label}")
    if target.target_time is not None:
        args += ["--type=time", f"--target={target.target_time.isoformat(sep=' ')}"]
    elif target.label is not None:
        args.append("--type=immediate")
    if target.label is not None or target.target_time is not None:
        args.append("--target-action=promote")
    return args


class PgBackRest:
    def __init__(self, pg: PostgreSQL) -> None:
        self.pg = pg
        self.directory = pg.data_dir / DIRECTORY
        self.conf = self.directory / CONF

    @property
    def configured(self) -> bool:
        return self.conf.is_file()

    def _stanza(self) -> str | None:
        """This server's own stanza (the configuration's first section after global)."""
        try:
            sections = [
                line.strip()[1:-1]
                for line in self.conf.read_text().splitlines()
                if line.startswith("[")
            ]
        except OSError:
            return None
        return next((s for s in sections if s != "global"), None)

    def configure(self, access: RepositoryAccess, restore_stanza: str | None = None) -> None:
        """Write the configuration and the files it names: the repository's options in
        the global section, this server's data directory under its own stanza (and the
        restore source's, which `pgbackrest restore` needs)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.pg._own(self.directory, 0o700)
        for name in ("log", "lock", "spool"):
            (self.directory / name).mkdir(exist_ok=True)
            self.pg._own(self.directory / name, 0o700)
        options: dict[str, str] = {
            "log-path": str(self.directory / "log"),
            "lock-path": str(self.directory / "lock"),
            "spool-path": str(self.directory / "spool"),
            "log-level-file": "off",
            "log-level-console": "warn",
            "log-level-stderr": "error",
            **access.options,
        }
        for option, content in access.files.items():
            path = self.directory / f"{option}.pem"
            self.pg._write(path, content)
            options[option] = str(path)
        pg = {
            "pg1-path": str(self.pg.pgdata),
            "pg1-port": str(self.pg.port),
            "pg1-socket-path": str(self.pg.socket_dir),
        }
        sections: list[tuple[str, Mapping[str, str]]] = [("global", options)]
        sections.append((access.stanza, pg))
        if restore_stanza is not None and restore_stanza != access.stanza:
            sections.append((restore_stanza, pg))
        text = "".join(
            f"[{name}]\n" + "".join(f"{k}={v}\n" for k, v in values.items()) + "\n"
            for name, values in sections
        )
        self.pg._write(self.conf, text)

    def archive_command(self) -> str | None:
        """The archive_command into this server's own stanza (unquoted), if it has one."""
        stanza = self._stanza()
        if stanza is None:
            return None
        return f"{PGBACKREST} --config={self.conf} --stanza={stanza} archive-push %p"

    def archive_settings(self) -> dict[str, str]:
        """PostgreSQL's settings for continuous archiving into this server's own stanza."""
        command = self.archive_command()
        if command is None:
            return {}
        return {
            "archive_mode": "on",
            "archive_command": quote(command),
            "archive_timeout": f"{ARCHIVE_TIMEOUT_S}s",
        }

    def _run(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", self.pg.account.pw_name, "--"] if self.pg.as_root else []
        try:
            return subprocess.run(
                [*prefix, PGBACKREST, f"--config={self.conf}", *args],
                cwd="/",
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError:
            raise GuestCommandError("pgBackRest is not installed on this server.") from None
        except subprocess.TimeoutExpired as exc:
            raise GuestCommandError(
                f"pgbackrest {args[-1]} did not finish in {timeout:g} s"
            ) from exc

    def restore(self, target: RestoreTarget) -> None:
        """The source stanza restored into the (absent or empty) data directory."""
        if target.target_time is not None and target.label is None:
            target = replace(target, label=self._set_before(target.stanza, target.target_time))
        self.pg.pgdata.mkdir(exist_ok=True)
        self.pg._own(self.pg.pgdata, 0o700)
        done = self._run(
            *_restore_args(target), f"--process-max={PROCESS_MAX}", "restore",
            timeout=RESTORE_TIMEOUT_S,
        )  # fmt: skip
        self.pg._check("pgbackrest restore", done)

    def _set_before(self, stanza: str, instant: datetime) -> str:
        """The newest set that ended in a second before `instant`'s: pgBackRest's own pick
        compares whole-second stop times, and a set that ended in the instant's own second
        may not be consistent yet at the instant."""
        done = self._run(f"--stanza={stanza}", "--output=json", "info", timeout=60)
        self.pg._check("pgbackrest info", done)
        try:
            [found] = json.loads(done.stdout)
            sets = found.get("backup", [])
        except (ValueError, TypeError):
            raise GuestCommandError("pgbackrest info gave no stanza") from None
        before = [b for b in sets if int(b["timestamp"]["stop"]) < int(instant.timestamp())]
        if not before:
            raise GuestCommandError(f"no backup set ended before {instant.isoformat()}")
        return str(max(before, key=lambda b: int(b["timestamp"]["stop"]))["label"])

    # The TLS server for the repository host.

    @property
    def _pid_file(self) -> Path:
        return self.directory / SERVER_PID

    def _server_pid(self) -> int | None:
        try:
            pid = int(self._pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if f"--config={self.conf}".encode() in cmdline else None

    def serves(self) -> bool:
        """Whether this server's configuration asks for the TLS server."""
        try:
            return "tls-server-auth=" in self.conf.read_text()
        except OSError:
            return False

    def running(self) -> bool:
        """Whether the TLS server runs (its pid file's process, or one on its port)."""
        return self._server_pid() is not None or self._listening()

    def ensure_server(self) -> None:
        """Start `pgbackrest server` (detached, as the cluster's owner) unless it runs."""
        if not self.serves() or self._server_pid() is not None:
            return
        prefix = ["runuser", "-u", self.pg.account.pw_name, "--"] if self.pg.as_root else []
        log = self.directory / "log" / "server.out"
        with open(log, "ab") as out:
            process = subprocess.Popen(
                [*prefix, PGBACKREST, f"--config={self.conf}", "server"],
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        # runuser execs nothing: it forks pgbackrest and waits; its pid stands for both.
        self._pid_file.write_text(str(process.pid))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and process.poll() is None:
            if self._listening():
                return
            time.sleep(0.02)
        if process.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-2:]
            raise GuestCommandError(f"pgbackrest server did not start: {' '.join(tail)}")

    def _listening(self) -> bool:
        port = next(
            (
                line.split("=", 1)[1].strip()
                for line in self.conf.read_text().splitlines()
                if line.startswith("tls-server-port=")
            ),
            "8432",
        )
        wanted = f":{int(port):04X} "
        with contextlib.suppress(OSError):
            for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and (fields[1] + " ").endswith(wanted):
                    return True
        return False

    def stop_server(self) -> None:
        stop_detached(self._pid_file, self._server_pid)


def stop_detached(pid_file: Path, running: Callable[[], int | None]) -> None:
    """SIGTERM the session of a detached process (`running()`: its pid while it runs),
    wait up to 5 s for it to go, and remove its pid file."""
    pid = running()
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while running() is not None and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.02)
    pid_file.unlink(missing_ok=True)
