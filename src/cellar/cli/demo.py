"""`cellar demo` (what `make demo` runs): the main job, end to end, on the embedded default.

Starts `cellar serve` in its own state directory, then through the API: create an
instance (with a progress display), resize its flavor, grow its volume, reboot it,
restart its datastore, delete it, and audit the cloud. Prints a summary at the end.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import httpx
from rich.table import Table

from cellar.cli.client import Client, console, wait_for
from cellar.cli.server import settings_env
from cellar.config import settings_from_env
from cellar.db.engine import make_engine, make_session_factory, transaction
from cellar.db.migrate import upgrade


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise click.ClickException(f"cellar serve exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise click.ClickException("cellar serve did not answer in time")


@click.command()
@click.option("--backend", type=click.Choice(["fake"]), default="fake", show_default=True)
@click.option("--resource-manager", default="native", show_default=True)
@click.option(
    "--latency",
    type=float,
    default=0.3,
    show_default=True,
    help="Seconds each fake cloud call and each build takes.",
)
@click.option("--state-dir", type=click.Path(path_type=Path), default=None)
def demo(backend: str, resource_manager: str, latency: float, state_dir: Path | None) -> None:
    """Create, resize, grow, reboot, restart and delete an instance, then audit."""
    from cellar.db.tokens import issue_token

    state = state_dir or Path(tempfile.mkdtemp(prefix="cellar-demo-"))
    port = _free_port()
    settings = settings_from_env(
        state_dir=state,
        backend=backend,
        resource_manager=resource_manager,
        api_port=port,
        fake_latency_s=latency,
    )
    engine = make_engine(settings.database_url)
    upgrade(engine)
    with transaction(make_session_factory(engine)) as s:
        token = issue_token(s, project_id="demo")
    url = f"http://127.0.0.1:{port}"
    console.print(
        f"[bold]cellar demo[/]: backend {backend}, resource manager "
        f"{resource_manager}, state in {state}"
    )
    log = open(state / "serve.log", "wb")  # noqa: SIM115 - kept open for the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "cellar", "serve"],
        env=settings_env(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    summary: list[tuple[str, float, str]] = []
    try:
        _wait_http(url + "/", proc)
        client = Client(url, token, "demo")

        def step(title: str, fn: Any) -> Any:
            console.rule(title)
            t0 = time.monotonic()
            result = fn()
            summary.append((title, time.monotonic() - t0, "ok"))
            return result

        def create() -> dict[str, Any]:
            body = {
                "instance": {
                    "name": "demo-db",
                    "flavorRef": "1",
                    "volume": {"size": 1},
                    "datastore": {"type": "postgresql"},
                }
            }
            inst = client.request("POST", "/instances", json=body)["instance"]
            console.print(f"instance {inst['id']} accepted: {inst['status']}")
            return wait_for(client, inst["id"]) or inst

        inst = step("create", create)
        iid = inst["id"]

        def action(body: dict[str, Any], check: Any) -> Any:
            def run() -> None:
                client.request("POST", f"/instances/{iid}/action", json=body)
                done = wait_for(client, iid)
                assert done is not None
                if done.get("fault"):
                    raise click.ClickException(done["fault"]["message"])
                problem = check(done)
                if problem:
                    raise click.ClickException(problem)

            return run

        step(
            "resize flavor 1 -> 2",
            action(
                {"resize": {"flavorRef": "2"}},
                lambda i: None if i["flavor"]["id"] == "2" else f"flavor is {i['flavor']['id']}",
            ),
        )
        step(
            "resize volume 1 -> 2 GB",
            action(
                {"resize": {"volume": {"size": 2}}},
                lambda i: None if i["volume"]["size"] == 2 else f"volume is {i['volume']['size']}",
            ),
        )
        step("reboot", action({"reboot": {}}, lambda i: None))
        step("restart", action({"restart": {}}, lambda i: None))

        def delete() -> None:
            client.request("DELETE", f"/instances/{iid}")
            wait_for(client, iid, until=(), gone_ok=True)

        step("delete", delete)

        def audit() -> None:
            result = subprocess.run(
                [sys.executable, "-m", "cellar", "audit"],
                env=settings_env(settings),
                capture_output=True,
                text=True,
            )
            console.print(result.stdout.strip())
            if result.returncode != 0:
                raise click.ClickException("audit found orphaned resources")

        step("audit", audit)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    table = Table(title="cellar demo: summary")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("result")
    for title, seconds, result in summary:
        table.add_row(title, f"{seconds:.2f}", result)
    console.print(table)
    console.print(f"[green]demo passed[/] (server log: {state / 'serve.log'})")
