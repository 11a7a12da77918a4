"""`cellar demo` (what `make demo` runs): the main job, end to end, on the embedded default.

Starts `cellar serve` in its own state directory, then through the API: create an
instance (with a progress display), resize its flavor, grow its volume, reboot it,
restart its datastore, delete it, and audit the cloud; on the local cloud it also
connects to PostgreSQL by the instance's DNS name, writes rows, keeps writing while the
volume grows, and checks the rows after every change, then backs it up, writes more
rows and restores it to an instant between two of them (demo_backup.py): the rows
committed before the instant are there, the others not. Then a cluster (demo_cluster.py):
three members of two sizes, rows read on each replica, a grow, a switchover while a writer
keeps writing (its longest gap and the rows lost), a shrink and a delete. Prints a summary
at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from cellar.cli.client import Client, console, wait_for
from cellar.cli.demo_backup import backup_scenario
from cellar.cli.demo_cluster import ClusterFigures, cluster_scenario, delete_clusters
from cellar.cli.demo_db import DemoDatabase
from cellar.cli.embedded import free_port, issue_token, serving
from cellar.cli.server import settings_env
from cellar.config import Settings, settings_from_env


class Steps:
    def __init__(self) -> None:
        self.done: list[tuple[str, float]] = []

    def run(self, title: str, fn: Callable[[], Any]) -> Any:
        console.rule(title)
        t0 = time.monotonic()
        result = fn()
        self.done.append((title, time.monotonic() - t0))
        return result

    def table(self) -> Table:
        table = Table(title="cellar demo: summary")
        table.add_column("step")
        table.add_column("seconds", justify="right")
        for title, seconds in self.done:
            table.add_row(title, f"{seconds:.2f}")
        return table


def _local_problems() -> list[str]:
    from cellar.localcloud.system import missing_tools

    problems = [] if os.geteuid() == 0 else ["root (namespaces, loop devices, mounts, cgroups)"]
    return problems + missing_tools()


@click.command()
@click.option(
    "--backend",
    type=click.Choice(["local", "fake"]),
    default="local",
    show_default=True,
    help="local: real PostgreSQL servers on this machine (needs root); fake: in a file.",
)
@click.option("--resource-manager", default="native", show_default=True)
@click.option(
    "--latency",
    type=float,
    default=0.3,
    show_default=True,
    help="fake backend: seconds each call and each build takes.",
)
@click.option("--state-dir", type=click.Path(path_type=Path), default=None)
def demo(backend: str, resource_manager: str, latency: float, state_dir: Path | None) -> None:
    """An instance (create, resize, grow, reboot, restart, a backup and a point-in-time
    restore, delete), then a cluster (create, grow, switchover while writing, shrink,
    delete), then audit."""
    if backend == "local" and (problems := _local_problems()):
        console.print(
            "[yellow]The local cloud cannot run here[/]: missing "
            + "; ".join(problems)
            + ".\nRunning the same scenario on the fake cloud instead (--backend fake)."
        )
        backend = "fake"
    state = state_dir or Path(tempfile.mkdtemp(prefix="cellar-demo-"))
    state.chmod(0o755)  # volumes are mounted below it and the postgres user must reach them
    settings = settings_from_env(
        state_dir=state,
        backend=backend,
        resource_manager=resource_manager,
        api_port=free_port(),
        fake_latency_s=latency,
    )
    token = issue_token(settings, "demo")
    console.print(
        f"[bold]cellar demo[/]: backend {backend}, resource manager {resource_manager}, "
        f"state in {state}"
    )
    steps = Steps()
    try:
        with serving(settings) as served:
            client = Client(served.url, token, "demo")
            try:
                figures = scenario(client, settings, steps)
            except BaseException:
                _delete_everything(client)
                raise
    finally:
        if backend == "local" and state_dir is None:
            # The demo's own cloud: its bridge, host firewall table and mounts go too.
            from cellar.localcloud.cleanup import teardown

            teardown(settings)
    console.print(steps.table())
    if figures.rows:  # the database work ran (the local cloud)
        console.print(figures.table())
    console.print(f"[green]demo passed[/] (server log: {state / 'serve.log'})")


def scenario(client: Client, settings: Settings, steps: Steps) -> ClusterFigures:
    local = settings.backend == "local"
    password = "demo-" + os.urandom(6).hex()

    def create() -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": "demo-db",
            "flavorRef": "1",
            "volume": {"size": 1},
            "datastore": {"type": "postgresql"},
            "databases": [{"name": "shop"}],
            "users": [{"name": "demo", "password": password, "databases": [{"name": "shop"}]}],
        }
        inst = client.request("POST", "/instances", json={"instance": body})["instance"]
        console.print(f"instance {inst['id']} accepted: {inst['status']}")
        return wait_for(client, inst["id"]) or inst

    inst = steps.run("create", create)
    iid = inst["id"]
    db = DemoDatabase(settings, inst, user="demo", password=password) if local else None
    if db is not None:
        steps.run("connect by DNS name and write rows", db.connect_and_write)

    def action(
        body: dict[str, Any], check: Callable[[dict[str, Any]], str | None], rows: bool = True
    ) -> Callable[[], None]:
        def run() -> None:
            last = client.last_event(iid)
            client.request("POST", f"/instances/{iid}/action", json=body)
            done = wait_for(client, iid, after=last)
            if done is None or done.get("fault"):
                raise click.ClickException(str((done or {}).get("fault")))
            problem = check(done)
            if problem:
                raise click.ClickException(problem)
            if db is not None and rows:
                db.check_rows()

        return run

    def grow() -> None:
        resize = action({"resize": {"volume": {"size": 2}}}, _size(2), rows=db is None)
        if db is None:
            resize()
            return
        with db.writing():
            resize()
        db.check_rows()

    steps.run("resize volume 1 -> 2 GB" + (" while writing" if local else ""), grow)
    steps.run("resize flavor 1 -> 2", action({"resize": {"flavorRef": "2"}}, _flavor("2")))
    steps.run("reboot", action({"reboot": {}}, lambda i: None))
    steps.run("restart", action({"restart": {}}, lambda i: None))
    if db is not None:
        backup_scenario(client, settings, steps, client.instance(iid) or inst, db)

    def delete() -> None:
        last = client.last_event(iid)
        client.request("DELETE", f"/instances/{iid}")
        wait_for(client, iid, until=(), gone_ok=True, after=last)

    steps.run("delete", delete)
    figures = cluster_scenario(client, settings, steps)

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
        if local:
            from cellar.localcloud.cleanup import leftovers

            left = leftovers(settings)
            if left:
                raise click.ClickException("left on the host: " + "; ".join(left))
            console.print("host: no namespace, loop device, mount, cgroup or nft table left")

    steps.run("audit", audit)
    return figures


def _delete_everything(client: Client) -> None:
    """After a failed step: delete what the demo made, so the machine is left clean."""
    console.print("[yellow]the demo failed; deleting its clusters and instances[/]")
    try:
        delete_clusters(client)
        ids = [i["id"] for i in client.request("GET", "/instances")["instances"]]
        for iid in ids:
            client.request("DELETE", f"/instances/{iid}")
        for iid in ids:
            wait_for(client, iid, until=(), gone_ok=True, timeout=180)
    except click.ClickException as exc:
        console.print(f"[red]could not delete everything[/]: {exc.message}")


def _size(gb: int) -> Callable[[dict[str, Any]], str | None]:
    return lambda i: None if i["volume"]["size"] == gb else f"volume is {i['volume']['size']} GB"


def _flavor(fid: str) -> Callable[[dict[str, Any]], str | None]:
    return lambda i: None if i["flavor"]["id"] == fid else f"flavor is {i['flavor']['id']}"
