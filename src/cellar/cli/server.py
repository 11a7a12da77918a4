"""Server-side commands: serve, api, taskmanager, token, db, audit."""

from __future__ import annotations

import ctypes
import dataclasses
import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import click

from cellar.cli.options import settings_from, settings_options
from cellar.config import Settings
from cellar.db.engine import displayed_url, make_engine, make_session_factory, transaction
from cellar.db.migrate import upgrade

log = logging.getLogger("cellar")


def _logging() -> None:
    logging.basicConfig(
        level=os.environ.get("CELLAR_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
    )


def _migrated(settings: Settings) -> Any:
    engine = make_engine(settings.database_url)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    upgrade(engine)
    return engine


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process the same settings."""
    env = dict(os.environ)
    for field in dataclasses.fields(Settings):
        env[f"CELLAR_{field.name.upper()}"] = str(getattr(settings, field.name))
    return env


def _check_manager(settings: Settings) -> None:
    from cellar.domain.errors import CellarError
    from cellar.resource_managers import manager_class

    try:
        manager_class(settings.resource_manager)
    except CellarError as exc:
        raise click.BadParameter(exc.message, param_hint="--resource-manager") from exc


def _die_with_parent() -> None:
    """In the child: get SIGTERM when `cellar serve` dies, however it dies (uvicorn
    re-raises the signal that stopped it, so a `finally` in the parent may never run)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class Supervisor:
    """Keeps `settings.taskmanagers` task manager processes running beside the API: one
    that dies is started again under the same name and resumes the jobs it held."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stopping = threading.Event()
        host = socket.gethostname()
        self.names = [f"{host}-tm{i}" for i in range(max(1, settings.taskmanagers))]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def start(self) -> None:
        for name in self.names:
            self._spawn(name)
        self.thread.start()

    def _spawn(self, name: str) -> None:
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "cellar", "taskmanager", "--name", name],
            env=settings_env(self.settings),
            preexec_fn=_die_with_parent,
        )

    def _watch(self) -> None:
        while not self.stopping.wait(0.5):
            for name, proc in list(self.procs.items()):
                if proc.poll() is not None and not self.stopping.is_set():
                    log.warning(
                        "task manager %s exited with %s; starting it again", name, proc.returncode
                    )
                    self._spawn(name)

    def stop(self) -> None:
        self.stopping.set()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def _start_local_cloud(settings: Settings) -> tuple[list[str], Callable[[], None]]:
    """What the local cloud needs beside the API: the bridge and host firewall (made by
    its drivers, idempotently) and the DNS server. Returns the extra address the API must
    listen on (the bridge's: servers' guest agents reach the control plane there) and a
    function that stops the DNS server."""
    from cellar.drivers.registry import build_services
    from cellar.localcloud.dns import run_dns_server
    from cellar.localcloud.network import Network
    from cellar.localcloud.system import LocalCloudError, missing_tools, require_root

    try:
        require_root()
    except LocalCloudError as exc:
        raise click.ClickException(exc.message) from exc
    if missing := missing_tools():
        raise click.ClickException(
            "The local cloud needs: " + ", ".join(missing) + " (scripts/install-system-deps.sh)"
        )
    closed = [
        p for p in Path(settings.local_root).parents if p.exists() and not p.stat().st_mode & 0o001
    ]
    if closed:
        raise click.ClickException(
            f"The local cloud mounts volumes below {settings.local_root}, and the postgres "
            f"user cannot pass through {closed[0]} (no execute bit for others). Choose "
            "another --state-dir (as root the default is /var/lib/cellar)."
        )
    build_services(settings)
    dns = run_dns_server(settings)
    stop_agents = _keep_agents(settings)

    def stop() -> None:
        stop_agents()
        dns.stop()

    return [Network.from_settings(settings).gateway], stop


def _keep_agents(settings: Settings) -> Callable[[], None]:
    """A thread that starts again the guest agents that died (`Servers.revive_agents`);
    returns what stops it."""
    from cellar.localcloud.servers import AGENT_CHECK_S, Servers, state_path
    from cellar.localcloud.state import CloudState

    servers = Servers(settings, CloudState(state_path(settings)))
    stopping = threading.Event()

    def watch() -> None:
        while not stopping.wait(AGENT_CHECK_S):
            try:
                for server_id in servers.revive_agents():
                    log.warning("the guest agent of server %s died; started it again", server_id)
            except Exception:
                log.exception("looking for dead guest agents failed")

    threading.Thread(target=watch, name="agents", daemon=True).start()
    return stopping.set


def _run_api(settings: Settings, engine: Any, extra_hosts: list[str]) -> None:
    import uvicorn

    from cellar.api.app import create_app

    sockets = []
    for host in [settings.api_host, *extra_hosts]:
        # IPPROTO_TCP named, not 0: asyncio sets TCP_NODELAY on an accepted connection only
        # when its socket says TCP. Without it a response written in two pieces on a kept-
        # alive connection waited ~45 ms for a delayed ACK (Nagle), on every API call.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, settings.api_port))
        sock.listen(1024)
        sockets.append(sock)
    config = uvicorn.Config(create_app(settings, engine=engine), log_level="warning")
    uvicorn.Server(config).run(sockets=sockets)


@click.command()
@settings_options
@click.option("--host", "api_host", default=None, help="Address the API listens on.")
@click.option("--port", "api_port", type=int, default=None, help="Port the API listens on.")
def serve(**cli: Any) -> None:
    """The API, the task manager and (with --backend local) the local cloud's DNS."""
    _logging()
    settings = settings_from(**cli)
    _check_manager(settings)
    engine = _migrated(settings)
    extra_hosts: list[str] = []
    stop_local: Callable[[], None] = lambda: None  # noqa: E731
    if settings.backend == "local":
        extra_hosts, stop_local = _start_local_cloud(settings)
    supervisor = Supervisor(settings)
    supervisor.start()
    log.info(
        "cellar serving on http://%s:%s (backend %s, resource manager %s, state %s)",
        settings.api_host,
        settings.api_port,
        settings.backend,
        settings.resource_manager,
        settings.state_dir,
    )
    try:
        _run_api(settings, engine, extra_hosts)
    finally:
        supervisor.stop()
        stop_local()


@click.command()
@settings_options
@click.option("--host", "api_host", default=None)
@click.option("--port", "api_port", type=int, default=None)
def api(**cli: Any) -> None:
    """The REST API alone."""
    import uvicorn

    from cellar.api.app import create_app

    _logging()
    settings = settings_from(**cli)
    engine = _migrated(settings)
    uvicorn.run(
        create_app(settings, engine=engine),
        host=settings.api_host,
        port=settings.api_port,
        log_level="warning",
    )


@click.command()
@settings_options
@click.option("--name", default=None, help="This task manager's name (default: host name).")
def taskmanager(name: str | None, **cli: Any) -> None:
    """Run jobs; resume the unfinished ones this task manager held when it stopped."""
    from cellar.taskmanager.runner import TaskManager

    _logging()
    settings = settings_from(**cli)
    _check_manager(settings)
    engine = _migrated(settings)
    signals: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        # Only a flag: a handler that set a threading.Event could deadlock with the main
        # thread waiting on that same Event (it holds the Event's lock when interrupted).
        signals.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    manager = TaskManager(settings, engine=engine, name=name)
    # A task manager takes the jobs its name held back at once: the previous process of
    # that name must be gone first (one stopping may still be finishing a step).
    lock = _hold_name(settings, manager.name, stopped=lambda: bool(signals))
    if lock is None:
        return  # a signal came while waiting
    manager.start()
    log.info(
        "task manager %s running (%s, %s)",
        manager.name,
        settings.backend,
        settings.resource_manager,
    )
    while not signals:
        signal.pause()
    log.info("task manager %s stopping (signal %d)", manager.name, signals[0])
    manager.stop()
    logging.shutdown()
    # Threads left in a step (see TaskManager.stop) must not keep the process alive: what
    # they were doing resumes elsewhere, as after a crash. The name's lock goes with us.
    os._exit(0)


def _hold_name(settings: Settings, name: str, stopped: Callable[[], bool]) -> IO[bytes] | None:
    """An exclusive lock on `<state_dir>/taskmanagers/<name>.lock`, held for the life of
    the process (the kernel releases it however the process ends); waits while another
    process of that name holds it. None if a signal to stop came while waiting."""
    folder = Path(settings.state_dir) / "taskmanagers"
    folder.mkdir(parents=True, exist_ok=True)
    handle = (folder / f"{name}.lock").open("ab")
    waiting_since: float | None = None
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if stopped():
                handle.close()
                return None
            if waiting_since is None:
                waiting_since = time.monotonic()
                log.info("task manager %s: waiting for the previous process of that name", name)
            time.sleep(0.1)


@click.group()
def token() -> None:
    """API tokens (standalone mode)."""


@token.command("issue")
@settings_options
@click.option("--project", required=True, help="The project the token acts for.")
@click.option("--admin", is_flag=True, help="The token sees every project.")
@click.option(
    "--ttl",
    type=click.FloatRange(min=1),
    default=None,
    help="Seconds the token is valid (default: CELLAR_TOKEN_TTL_S, a day).",
)
def token_issue(project: str, admin: bool, ttl: float | None, **cli: Any) -> None:
    """Print a new token; the last line of output is the token alone."""
    from cellar.db.tokens import issue_token

    settings = settings_from(**cli)
    ttl_s = settings.token_ttl_s if ttl is None else ttl
    engine = _migrated(settings)
    with transaction(make_session_factory(engine)) as s:
        value = issue_token(s, project_id=project, is_admin=admin, ttl_s=ttl_s)
    click.echo(
        f"# token for project {project}{' (admin)' if admin else ''}, valid {ttl_s:g} s",
        err=True,
    )
    click.echo(value)


@token.command("revoke")
@settings_options
@click.option(
    "--token",
    "value",
    envvar="CELLAR_REVOKE_TOKEN",
    prompt=True,
    hide_input=True,
    help="The token to revoke (env CELLAR_REVOKE_TOKEN; asked for when not given).",
)
def token_revoke(value: str, **cli: Any) -> None:
    """Revoke a token: every request that carries it gets 401 from now on."""
    from cellar.db.tokens import revoke_token

    engine = _migrated(settings_from(**cli))
    with transaction(make_session_factory(engine)) as s:
        revoked = revoke_token(s, token=value.strip())
    if not revoked:
        raise click.ClickException("no such token (already revoked, or never issued)")
    click.echo("token revoked")


@click.group()
def db() -> None:
    """The control plane's database."""


@db.command("upgrade")
@settings_options
def db_upgrade(**cli: Any) -> None:
    """Apply every Alembic migration not yet applied."""
    settings = settings_from(**cli)
    _migrated(settings)
    click.echo(f"database at {displayed_url(settings.database_url)} is up to date")


@click.command()
@settings_options
def audit(**cli: Any) -> None:
    """List cloud resources that no live instance owns; exit 1 if there is any."""
    from cellar.drivers.registry import build_services
    from cellar.taskmanager.audit import find_orphans

    settings = settings_from(**cli)
    engine = _migrated(settings)
    orphans = find_orphans(build_services(settings), make_session_factory(engine))
    if not orphans:
        click.echo("audit: clean (no cloud resource without a live instance)")
        return
    click.echo(f"audit: {len(orphans)} orphaned resource(s):")
    for o in orphans:
        click.echo(f"  {o.kind:15} {o.id}  {o.name}  (instance {o.instance_id})")
    sys.exit(1)


COMMANDS = (serve, api, taskmanager, token, db, audit)
