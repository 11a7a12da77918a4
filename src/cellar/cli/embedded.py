"""`cellar serve` as a child process, for the demo and the benchmarks."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import click
import httpx

from cellar.cli.server import settings_env
from cellar.config import Settings
from cellar.db.engine import make_engine, make_session_factory, transaction
from cellar.db.migrate import upgrade


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def issue_token(settings: Settings, project: str) -> str:
    """A token for `project` in the database of `settings` (migrated first)."""
    from cellar.db import tokens

    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
        with transaction(make_session_factory(engine)) as session:
            return tokens.issue_token(session, project_id=project, ttl_s=settings.token_ttl_s)
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Served:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path


@contextmanager
def serving(settings: Settings) -> Iterator[Served]:
    """`cellar serve` with these settings; yields once it answers, stops it after."""
    log_path = Path(settings.state_dir) / "serve.log"
    log = open(log_path, "wb")  # noqa: SIM115 - the child writes to it until it stops
    proc = subprocess.Popen(
        [sys.executable, "-m", "cellar", "serve"],
        env=settings_env(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{settings.api_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise click.ClickException(
                    f"cellar serve exited with {proc.returncode}; see {log_path}"
                )
            try:
                if httpx.get(url + "/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise click.ClickException(f"cellar serve did not answer; see {log_path}")
            time.sleep(0.1)
        yield Served(url, proc, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
