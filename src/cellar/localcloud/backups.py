"""The local cloud's backup repository: pgBackRest 2.45 (Debian's), owned by the cloud.

Topology, as measured on this machine (see also `cellar.guest.pgbackrest`):

- **One repository** under `<local_root>/backups/repo`, served by one `pgbackrest server`
  (TLS) on the host's address on the bridge, `REPOSITORY_PORT`. It outlives every
  instance: a stanza (one per instance, `cellar-<instance id>`) stays until its project
  drops it, so a deleted instance's backups and WAL still restore.
- **Isolation by what a guest holds**, since servers here share the host's filesystem:
  each project's guests get that project's client certificate (CN `project-<id>`), and
  the server's `tls-server-auth` lets each CN in for its own project's stanzas only. A
  client cannot get around it: pgBackRest lets a client name the repository path and
  even the configuration file the server reads (`repo1-host-config`, `repo1-path`:
  measured), so a per-project server with `*` would isolate nothing; the per-stanza
  list is what is checked on every connection. Another project's certificate, or this
  project's for another project's stanza, is refused ("access denied"). The server
  reloads the list on SIGHUP when a stanza is added.
- **Backups run on the repository's host**: pgBackRest refuses `backup`, `expire` (and
  `stanza-create` needs the database) anywhere else when the repository is remote
  ("backup command must be run on the repository host"). The host reaches each guest's
  own `pgbackrest server` (its address, `GUEST_PORT`) with its client certificate
  (CN `cellar-repository`), which that server lets in for its own stanza only.
- **A replication group shares a stanza**: the stanza's row lists each member's host;
  a backup from a replica names the primary as `pg1` and the replica as `pg2` with
  `backup-standby` (pgBackRest starts and stops the backup on the primary and copies
  the files from the standby, both through their guests' servers).
- **WAL** is pushed by each guest (`archive_command`, gzip level 1 so that the host can
  read the newest segments for the window); backups are lz4, two processes.

Measured here (2 cores, loop-back TLS, 471 MB of pgbench data): full backup 6.8 s with
one process (69 MiB/s), 4.9 s with two (96 MiB/s); incremental after a few rows 2.3 s;
restore of the same 1.9 s (250 MiB/s) plus ~0.5 s to start and promote; `verify` of a
set 1.5 s. A point-in-time restore gave exactly the rows committed before its target.
Later (1 GB of pgbench data, a loaded host: `bench/backup.py` and the job's own stamps in
its job file, `clock`): the detached job starts 0.25 s after it is spawned (Python's
imports), `pgbackrest backup` through the guest's server takes about what it takes by hand
(3.9 to 5.1 s against 2.9 to 4.9 s at 550 MB, same CPU split: the guest's server runs the
read side's filters, 1.5 s of CPU, the host 0.6 s), `info` 0.03 s, and `verify` of the
set 0.3 to 4.5 s (it reads the whole set back): a set whose cluster has page checksums is
checked as it is taken instead, `verify` only runs for one without. An online
`stanza-create` took 0.64 to 0.89 s (waiting on its database connection), `--no-online`
0.04 to 0.09 s.

On OpenStack the repository would be an object-store container per project
(`repo1-type=s3` with the project's own credentials), the backups taken by the guests.

The window's end is the last commit in the archived WAL (read with `pg_waldump` from
the newest segments), or the newest backup's end if that is later: any instant up to it
is either followed by an archived commit (recovery stops there) or is the end of the
archive (the guest then replays it all).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import pwd
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cellar.config import Settings
from cellar.domain.backups import (
    BackupProgress,
    BackupSet,
    BackupState,
    BackupType,
    RepositoryAccess,
    RestorableWindow,
    stanza_name,
)
from cellar.domain.replication import lsn_to_int
from cellar.guest.pgbackrest import stop_detached
from cellar.localcloud.backup_job import ANNOTATION, OWNER, WITH_PG, read_job, safe_name, write_job
from cellar.localcloud.backup_tls import (
    REPOSITORY_CLIENT_CN,
    CertificateAuthority,
    project_cn,
)
from cellar.localcloud.firewall import BACKUP_GUEST_PORT, BACKUP_REPOSITORY_PORT
from cellar.localcloud.network import Network, file_lock
from cellar.localcloud.state import CloudState, Resource
from cellar.localcloud.system import LocalCloudError

STANZA = "stanza"
REPOSITORY_PORT = BACKUP_REPOSITORY_PORT
GUEST_PORT = BACKUP_GUEST_PORT
PG_BIN = Path("/usr/lib/postgresql/15/bin")
COMMAND_TIMEOUT_S = 600.0
# How long a backup waits for the guest's pgBackRest server (its agent restarts a dead one).
GUEST_SERVER_WAIT_S = 15.0
# How often a running backup's percent is asked of pgBackRest (`backup_progress`).
PERCENT_EVERY_S = 1.0
_COMMIT = re.compile(r"desc: (?:COMMIT|ABORT) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC")
# How many of the newest archived segments are searched for the last commit.
_SEGMENTS_SEARCHED = 8


class BackupRepository:
    def __init__(
        self,
        settings: Settings,
        state: CloudState | None = None,
        *,
        address: str | None = None,
        port: int = REPOSITORY_PORT,
    ) -> None:
        self.root = settings.local_root / "backups"
        self.state = state or CloudState(settings.local_root / "state.sqlite")
        self.address = address or Network.from_settings(settings).gateway
        self.port = port
        self.repo = self.root / "repo"
        self.conf = self.root / "repository.conf"
        self.jobs = self.root / "jobs"
        self.ca = CertificateAuthority(self.root / "tls")
        self.owner = pwd.getpwnam(OWNER)
        # By backup id: when a running backup's percent was last asked, and what it was.
        self._progress: dict[str, tuple[float, float | None]] = {}

    # Files and processes.

    def _own(self, path: Path) -> None:
        os.chown(path, self.owner.pw_uid, self.owner.pw_gid)

    def _own_certificate(self, name: str, cn: str, address: str | None = None) -> tuple[Path, Path]:
        cert, key = self.ca.issue(name, cn, address=address)
        self._own(key)
        return cert, key

    def _write_conf(self) -> None:
        """The repository's configuration: its path, compression, and who may use which
        stanzas (one `tls-server-auth` line per project)."""
        cert, key = self._own_certificate("repository", self.address, self.address)
        stanzas: dict[str, list[str]] = {}
        for row in self.state.list(STANZA):
            stanzas.setdefault(str(row.parent), []).append(row.id)
        lines = [
            "[global]",
            f"repo1-path={self.repo}",
            f"log-path={self.root / 'log'}",
            f"lock-path={self.root / 'lock'}",
            "log-level-file=off",
            "log-level-console=warn",
            "log-level-stderr=error",
            "compress-type=lz4",
            "process-max=2",
            "start-fast=y",
            "archive-check=y",
            "repo1-retention-full-type=count",
            "repo1-retention-full=9999999",
            f"tls-server-address={self.address}",
            f"tls-server-port={self.port}",
            f"tls-server-ca-file={self.ca.cert}",
            f"tls-server-cert-file={cert}",
            f"tls-server-key-file={key}",
            *(
                f"tls-server-auth={project_cn(project)}={','.join(sorted(names))}"
                for project, names in sorted(stanzas.items())
            ),
            "",
        ]
        tmp = self.conf.with_suffix(".tmp")
        tmp.write_text("\n".join(lines))
        tmp.chmod(0o644)
        os.replace(tmp, self.conf)

    def _prepare_dirs(self) -> None:
        for directory in (self.root, self.repo, self.root / "log", self.root / "lock", self.jobs):
            directory.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        for directory in (self.repo, self.root / "log", self.root / "lock", self.jobs):
            self._own(directory)
            directory.chmod(0o750)

    @property
    def _pid_file(self) -> Path:
        return self.root / "server.pid"

    def server_pid(self) -> int | None:
        try:
            pid = int(self._pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if f"--config={self.conf}".encode() in cmdline else None

    def ensure_server(self) -> None:
        """The repository's TLS server, started (detached) or told to reload its list."""
        pid = self.server_pid()
        if pid is not None:
            os.kill(pid, signal.SIGHUP)
            return
        log = self.root / "log" / "server.out"
        with open(log, "ab") as out:
            process = subprocess.Popen(
                ["pgbackrest", f"--config={self.conf}", "server"],
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                user=self.owner.pw_uid,
                group=self.owner.pw_gid,
                extra_groups=[],
                start_new_session=True,
            )
        self._pid_file.write_text(str(process.pid))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise LocalCloudError(f"The backup repository's server did not start: {_tail(log)}")
            with contextlib.suppress(OSError), _connect(self.address, self.port):
                return
            time.sleep(0.02)
        raise LocalCloudError("The backup repository's server does not listen after 5 s.")

    def stop(self) -> None:
        """Stop the repository's server (the cloud's teardown); the repository stays."""
        stop_detached(self._pid_file, self.server_pid)

    def _pgbackrest(
        self, stanza: str, command: str, *args: str, timeout: float = COMMAND_TIMEOUT_S,
        primary: str | None = None,
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        argv = ["pgbackrest", f"--config={self.conf}", f"--stanza={stanza}"]
        pg = self._pg_options(stanza, primary) if command in WITH_PG else []
        return subprocess.run(
            [*argv, *pg, *args, command],
            cwd="/",
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            user=self.owner.pw_uid,
            group=self.owner.pw_gid,
            extra_groups=[],
        )

    def host(self, stanza: str, member: str | None = None) -> dict[str, Any]:
        """Where a guest of the stanza is (its address, pgBackRest server, data
        directory): `member`'s, by default the stanza's first."""
        row = self.state.get(STANZA, stanza)
        if row is None:
            raise LocalCloudError(f"No stanza {stanza} in the backup repository.")
        hosts = _hosts(row.data)
        found = hosts.get(member or next(iter(hosts), ""))
        if found is None:
            raise LocalCloudError(f"Instance {member} does not archive into stanza {stanza}.")
        return found

    def _pg_options(
        self, stanza: str, primary: str | None = None, standby: str | None = None
    ) -> list[str]:
        """How the host reaches the stanza's guests (their pgBackRest servers): `pg1` the
        primary, and `pg2` a standby to copy the files from (`backup-standby`)."""
        cert, key = self._own_certificate("repository-client", REPOSITORY_CLIENT_CN)
        members = [primary] if standby is None or standby == primary else [primary, standby]
        options: list[str] = []
        for n, member in enumerate(members, start=1):
            d = self.host(stanza, member)
            options += [
                f"--pg{n}-host={d['address']}",
                f"--pg{n}-host-type=tls",
                f"--pg{n}-host-port={d['guest_port']}",
                f"--pg{n}-host-ca-file={self.ca.cert}",
                f"--pg{n}-host-cert-file={cert}",
                f"--pg{n}-host-key-file={key}",
                f"--pg{n}-host-config={d['guest_conf']}",
                f"--pg{n}-path={d['pgdata']}",
                f"--pg{n}-port={d['port']}",
                f"--pg{n}-socket-path={d['socket_dir']}",
            ]
        if len(members) == 2:
            options.append("--backup-standby")
        return options

    def _checked(self, what: str, done: subprocess.CompletedProcess[str]) -> str:
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip()[-1000:]
            raise LocalCloudError(f"pgbackrest {what} failed (exit {done.returncode}): {detail}")
        return done.stdout

    # What the driver uses.

    def access(
        self,
        project_id: str,
        archive: str,
        *,
        address: str,
        data_dir: Path,
        port: int,
        socket_dir: Path,
        guest_port: int = GUEST_PORT,
        member: str | None = None,
    ) -> RepositoryAccess:
        """Register the archive's stanza for its project, and the instance (`member` of
        the replication group `archive`, or `archive` itself) as one of its hosts; hand
        out the instance's access."""
        stanza = stanza_name(archive)
        instance_id = member or archive
        with file_lock(self.root.parent / "locks" / "backups.lock"):
            self._prepare_dirs()
            existing = self.state.get(STANZA, stanza)
            if existing is not None and existing.parent != project_id:
                raise LocalCloudError(f"Stanza {stanza} belongs to another project.")
            hosts = {} if existing is None else _hosts(existing.data)
            hosts[instance_id] = {
                "address": address,
                "guest_port": guest_port,
                "guest_conf": str(data_dir / "pgbackrest" / "pgbackrest.conf"),
                "pgdata": str(data_dir / "pgdata"),
                "port": port,
                "socket_dir": str(socket_dir),
            }
            self.state.put(Resource(stanza, STANZA, stanza, project_id, {"hosts": hosts}))
            self._write_conf()
            self.ensure_server()
        client_cert, client_key = self.ca.issue(
            f"project-{project_cn(project_id)}", project_cn(project_id)
        )
        server_cert, server_key = self.ca.issue(
            f"instance-{safe_name(instance_id)}", address, address=address
        )
        ca = self.ca.cert.read_text()
        return RepositoryAccess(
            stanza,
            options={
                "repo1-host": self.address,
                "repo1-host-type": "tls",
                "repo1-host-port": str(self.port),
                "repo1-host-config": str(self.conf),
                "compress-type": "gz",
                "compress-level": "1",
                "archive-async": "n",
                "tls-server-address": address,
                "tls-server-port": str(guest_port),
                "tls-server-auth": f"{REPOSITORY_CLIENT_CN}={stanza}",
            },
            files={
                "repo1-host-ca-file": ca,
                "repo1-host-cert-file": client_cert.read_text(),
                "repo1-host-key-file": client_key.read_text(),
                "tls-server-ca-file": ca,
                "tls-server-cert-file": server_cert.read_text(),
                "tls-server-key-file": server_key.read_text(),
            },
        )

    def create_stanza(self, stanza: str, primary: str | None = None) -> None:
        """The stanza, from the guest's `pg_control` (read through its pgBackRest server):
        `--no-online`, since the control plane creates it once the datastore runs, and
        an online stanza-create waits ~0.6 s for its database connection (measured:
        0.64 to 0.89 s against 0.04 to 0.09 s)."""
        self._checked(
            "stanza-create",
            self._pgbackrest(stanza, "stanza-create", "--no-online", primary=primary),
        )

    def info(self, stanza: str) -> dict[str, Any]:
        out = self._checked("info", self._pgbackrest(stanza, "info", "--output=json"))
        found: list[dict[str, Any]] = json.loads(out)
        return found[0] if found else {}

    def backup_sets(self, stanza: str) -> tuple[BackupSet, ...]:
        if self.state.get(STANZA, stanza) is None:
            return ()
        return tuple(_to_backup_set(b) for b in self.info(stanza).get("backup", []))

    def window(self, stanza: str) -> RestorableWindow | None:
        sets = self.backup_sets(stanza)
        if not sets:
            return None
        last_commit = self.last_archived_commit(stanza)
        until = max(sets[-1].stopped_at, last_commit or sets[-1].stopped_at)
        return RestorableWindow.of_archive(sets[0].stopped_at, until)

    def last_archived_commit(self, stanza: str) -> datetime | None:
        """The time of the last commit (or abort) in the stanza's archived WAL."""
        segments = sorted(
            (p for p in (self.repo / "archive" / stanza).glob("*/*/*.gz")),
            key=lambda p: p.name,
        )
        for path in reversed(segments[-_SEGMENTS_SEARCHED:]):
            found = _last_commit(path)
            if found is not None:
                return found
        return None

    def start_backup(
        self, stanza: str, backup_id: str, *, incremental: bool,
        primary: str | None = None, source: str | None = None,
    ) -> None:  # fmt: skip
        """Detached (`python -m cellar.localcloud.backups`), idempotent per backup id;
        the files copied from `source` (a standby of `primary`) when it is given."""
        job = self.jobs / f"{safe_name(backup_id)}.json"
        # The guests' servers are waited for before the lock (other instances' calls
        # take it): one restarted with its datastore (a reboot, a resize) may take a few
        # seconds to listen on a busy host.
        hosts = [self.host(stanza, member) for member in dict.fromkeys((primary, source))]
        answering = {
            (h["address"], int(h["guest_port"])): _answers_within(
                h["address"], int(h["guest_port"]), GUEST_SERVER_WAIT_S
            )
            for h in hosts
        }
        with file_lock(self.root.parent / "locks" / "backups.lock"):
            if job.exists() and (_alive(read_job(job).get("pid")) or "state" in read_job(job)):
                return
            if any(s.backup_id == backup_id for s in self.backup_sets(stanza)):
                return
            for (address, port), answers in answering.items():
                if not answers:
                    # A stopped datastore stops its guest's pgBackRest server too, and the
                    # guest agent starts a dead one again within a second: fail now
                    # rather than after pgBackRest's minute of connection retries.
                    write_job(job, {"stanza": stanza, "state": "failed", "error": (
                        f"the guest's pgBackRest server ({address}:{port}) does not answer: "
                        "the datastore is stopped, or its guest agent is not running"
                    )})  # fmt: skip
                    return
            kind = "incr" if incremental else "full"
            with open(self.jobs / f"{safe_name(backup_id)}.log", "ab") as out:
                process = subprocess.Popen(
                    [sys.executable, "-m", "cellar.localcloud.backup_job", str(self.conf),
                     stanza, backup_id, kind,
                     json.dumps(self._pg_options(stanza, primary, source))],
                    cwd="/", stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            write_job(job, {"pid": process.pid, "stanza": stanza, "type": kind,
                         "clock": {"spawned": time.time()}})  # fmt: skip

    def backup_progress(self, stanza: str, backup_id: str) -> BackupProgress:
        job = self.jobs / f"{safe_name(backup_id)}.json"
        data = read_job(job)
        if "state" in data:
            self._progress.pop(backup_id, None)
        if data.get("state") == "completed":
            recorded = data.get("set")
            if isinstance(recorded, dict):
                # The job recorded the set as pgBackRest listed it: no `info` needed,
                # only that it is still there.
                if (self.repo / "backup" / stanza / str(recorded["label"])).is_dir():
                    return BackupProgress(BackupState.COMPLETED, 100.0, _to_backup_set(recorded))
                return BackupProgress(BackupState.FAILED, error="the backup set is gone (deleted)")
            found = [s for s in self.backup_sets(stanza) if s.backup_id == backup_id]
            if found:
                return BackupProgress(BackupState.COMPLETED, 100.0, found[0])
            return BackupProgress(BackupState.FAILED, error="the backup set is gone (deleted)")
        if data.get("state") == "failed":
            return BackupProgress(BackupState.FAILED, error=str(data.get("error")))
        if _alive(data.get("pid")):
            return BackupProgress(BackupState.RUNNING, self._percent(stanza, backup_id))
        if not data:
            return BackupProgress(BackupState.FAILED, error=f"no backup {backup_id} was started")
        return BackupProgress(BackupState.FAILED, error="the backup process ended without a result")

    def _percent(self, stanza: str, backup_id: str) -> float | None:
        """How far the running backup is, as `pgbackrest info` says (its lock), asked at
        most every `PERCENT_EVERY_S`: each is a process beside the backup, and the job
        file says when it ends."""
        asked, percent = self._progress.get(backup_id, (0.0, None))
        if time.monotonic() - asked < PERCENT_EVERY_S:
            return percent
        lock = self.info(stanza).get("status", {}).get("lock", {}).get("backup", {})
        if lock.get("size"):
            percent = round(100.0 * lock.get("size-cplt", 0) / lock["size"], 1)
        self._progress[backup_id] = (time.monotonic(), percent)
        return percent

    def expire(
        self, stanza: str, *, keep_full: int | None = None, keep_days: int | None = None
    ) -> None:
        """pgBackRest's retention: by count of full backups, or by their age in days."""
        if (keep_full is None) == (keep_days is None):
            raise LocalCloudError("expire needs exactly one of keep_full and keep_days")
        kind, value = ("count", keep_full) if keep_full is not None else ("time", keep_days)
        self._checked(
            "expire",
            self._pgbackrest(
                stanza, "expire", f"--repo1-retention-full-type={kind}",
                f"--repo1-retention-full={value}",
            ),
        )  # fmt: skip

    def delete_set(self, stanza: str, label: str) -> tuple[str, ...]:
        """Expire one set; returns the labels that depend on it instead when some do."""
        sets = self.info(stanza).get("backup", [])
        if not any(b["label"] == label for b in sets):
            return ()
        dependents = tuple(b["label"] for b in sets if label in (b.get("reference") or []))
        if dependents:
            return dependents
        self._checked("expire", self._pgbackrest(stanza, "expire", f"--set={label}"))
        return ()


def _hosts(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A stanza row's hosts by instance id (a row written before groups shared stanzas
    held its one host's fields at the top)."""
    if "hosts" in data:
        return dict(data["hosts"])
    return {str(data["instance_id"]): {k: v for k, v in data.items() if k != "instance_id"}}


def _to_backup_set(b: dict[str, Any]) -> BackupSet:
    return BackupSet(
        label=b["label"],
        type=BackupType.FULL if b["type"] == "full" else BackupType.INCREMENTAL,
        parent_label=b.get("prior"),
        started_at=datetime.fromtimestamp(b["timestamp"]["start"], UTC),
        stopped_at=datetime.fromtimestamp(b["timestamp"]["stop"], UTC),
        start_lsn=lsn_to_int(b["lsn"]["start"]),
        stop_lsn=lsn_to_int(b["lsn"]["stop"]),
        database_size_bytes=int(b["info"]["size"]),
        repository_size_bytes=int(b["info"]["repository"]["delta"]),
        backup_id=(b.get("annotation") or {}).get(ANNOTATION),
    )


def _last_commit(path: Path) -> datetime | None:
    """The last commit or abort time in one archived (gzip) WAL segment."""
    segment = path.name.split("-")[0]
    if len(segment) != 24:
        return None
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / segment
        try:
            raw.write_bytes(gzip.decompress(path.read_bytes()))
        except (OSError, EOFError):
            return None
        done = subprocess.run(
            [str(PG_BIN / "pg_waldump"), "-r", "Transaction", str(raw)],
            capture_output=True, text=True, env={"TZ": "UTC", "LC_ALL": "C"}, check=False,
            timeout=60,
        )  # fmt: skip
    found = _COMMIT.findall(done.stdout)
    return datetime.fromisoformat(found[-1]).replace(tzinfo=UTC) if found else None


def _answers_within(address: str, port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not _answers(address, port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _answers(address: str, port: int) -> bool:
    try:
        _connect(address, port).close()
    except OSError:
        return False
    return True


def _connect(address: str, port: int) -> Any:
    import socket

    return socket.create_connection((address, port), timeout=1)


def _tail(log: Path) -> str:
    try:
        return " ".join(log.read_text(errors="replace").strip().splitlines()[-2:])
    except OSError:
        return "no log"


def _alive(pid: object) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"
