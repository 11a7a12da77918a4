"""`cellar instance ...`: the API's client, with a progress display for long work."""

from __future__ import annotations

import sys
import time
from typing import Any

import click
import httpx
from rich.console import Console

console = Console(stderr=True)


class ApiError(click.ClickException):
    def __init__(self, response: httpx.Response) -> None:
        try:
            body = response.json()
            detail = next(iter(body.values()))["message"] if isinstance(body, dict) else body
        except Exception:
            detail = response.text
        super().__init__(f"HTTP {response.status_code}: {detail}")


class Client:
    def __init__(self, url: str, token: str, project: str) -> None:
        self.http = httpx.Client(
            base_url=f"{url.rstrip('/')}/v1.0/{project}",
            headers={"X-Auth-Token": token},
            timeout=30,
        )

    def request(self, method: str, path: str, **kw: Any) -> Any:
        response = self.http.request(method, path, **kw)
        if response.status_code >= 400:
            raise ApiError(response)
        return response.json() if response.content else None

    def instance(self, instance_id: str) -> dict[str, Any] | None:
        response = self.http.get(f"/instances/{instance_id}")
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise ApiError(response)
        result: dict[str, Any] = response.json()["instance"]
        return result

    def events(self, instance_id: str) -> list[dict[str, Any]]:
        """The instance's events; none once it is gone (a delete may finish meanwhile)."""
        response = self.http.get(f"/instances/{instance_id}/events")
        if response.status_code == 404:
            return []
        if response.status_code >= 400:
            raise ApiError(response)
        result: list[dict[str, Any]] = response.json()["events"]
        return result

    def last_event(self, instance_id: str) -> int:
        """The newest event id so far: a progress display shows only what comes after."""
        return _last_event(self.events(instance_id))


def _last_event(events: list[dict[str, Any]]) -> int:
    return max((int(e["id"]) for e in events), default=0)


def wait_for(
    client: Client,
    instance_id: str,
    *,
    until: tuple[str, ...] = ("ACTIVE",),
    gone_ok: bool = False,
    timeout: float = 900,
    after: int = 0,
) -> dict[str, Any] | None:
    """Show each step as it finishes (events newer than `after`) until the instance
    reaches `until` (or ERROR)."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    with console.status(f"instance {instance_id}") as status:
        while True:
            inst = client.instance(instance_id)
            events = [] if inst is None else client.events(instance_id)
            for ev in events:
                if ev["id"] > after and ev["id"] not in seen:
                    seen.add(ev["id"])
                    took = f" ({ev['duration_ms']} ms)" if ev.get("duration_ms") is not None else ""
                    mark = {"succeeded": "[green]ok[/]", "failed": "[red]failed[/]"}.get(
                        ev["outcome"], ev["outcome"]
                    )
                    msg = f": {ev['message']}" if ev.get("message") else ""
                    console.print(f"  {ev['operation']:>16}  {ev['step']:<28} {mark}{took}{msg}")
            if inst is None:
                if gone_ok:
                    console.print(f"instance {instance_id} deleted")
                    return None
                raise click.ClickException(f"instance {instance_id} disappeared")
            status.update(f"instance {instance_id}: {inst['status']}")
            if inst["status"] in until:
                return inst
            if inst["status"] == "ERROR":
                fault = (inst.get("fault") or {}).get("message", "no fault recorded")
                raise click.ClickException(f"instance {instance_id} is ERROR: {fault}")
            if time.monotonic() > deadline:
                raise click.ClickException(f"timed out; instance is {inst['status']}")
            time.sleep(0.2)


client_options = [
    click.option("--url", envvar="CELLAR_URL", default="http://127.0.0.1:8779", show_default=True),
    click.option("--token", envvar="CELLAR_TOKEN", required=True, help="env CELLAR_TOKEN"),
    click.option("--project", envvar="CELLAR_PROJECT", required=True, help="env CELLAR_PROJECT"),
]


def with_client(fn: Any) -> Any:
    for option in reversed(client_options):
        fn = option(fn)
    return fn


def _client(url: str, token: str, project: str) -> Client:
    return Client(url, token, project)


def _show(inst: dict[str, Any]) -> None:
    fields = ("id", "name", "status", "task", "flavor", "volume", "datastore", "ip", "hostname")
    for key in fields:
        value = inst.get(key)
        if isinstance(value, dict):
            value = value.get("id") or value.get("size") or value.get("type")
            if key == "datastore":
                value = f"{inst['datastore'].get('type')} {inst['datastore'].get('version')}"
        click.echo(f"{key:>12}: {value}")
    if inst.get("fault"):
        click.echo(f"{'fault':>12}: {inst['fault'].get('message')}")


@click.group()
def instance() -> None:
    """Database instances."""


@instance.command("create")
@with_client
@click.argument("name")
@click.option("--flavor", default="1", show_default=True)
@click.option("--size", type=int, default=1, show_default=True, help="Volume size in GB.")
@click.option("--datastore", default="postgresql", show_default=True)
@click.option("--version", "ds_version", default=None)
@click.option("--allowed-cidr", multiple=True, help="May be given several times.")
@click.option("--backup", "backup_id", default=None, help="Restore this backup (its id).")
@click.option(
    "--restore-from", default=None, help="Restore this instance (id) as of --restore-time."
)
@click.option(
    "--restore-time", default=None, help="RFC 3339 instant, with --backup or --restore-from."
)
@click.option("--wait", is_flag=True, help="Show progress until the instance is ACTIVE.")
def create(
    url: str,
    token: str,
    project: str,
    name: str,
    flavor: str,
    size: int,
    datastore: str,
    ds_version: str | None,
    allowed_cidr: tuple[str, ...],
    backup_id: str | None,
    restore_from: str | None,
    restore_time: str | None,
    wait: bool,
) -> None:
    """Create an instance; with --backup or --restore-from, restored from a backup."""
    c = _client(url, token, project)
    body: dict[str, Any] = {
        "name": name,
        "flavorRef": flavor,
        "volume": {"size": size},
        "datastore": {"type": datastore, **({"version": ds_version} if ds_version else {})},
    }
    if allowed_cidr:
        body["access"] = {"allowed_cidrs": list(allowed_cidr)}
    point = restore_point(backup_id, restore_from, restore_time)
    if point is not None:
        body["restorePoint"] = point
    inst = c.request("POST", "/instances", json={"instance": body})["instance"]
    click.echo(inst["id"] if not wait else f"created {inst['id']}")
    if wait:
        _show(wait_for(c, inst["id"]) or inst)


def restore_point(
    backup_id: str | None, instance_id: str | None, restore_time: str | None
) -> dict[str, str] | None:
    """The `restorePoint` of `--backup`, `--restore-from` and `--restore-time`, if any."""
    if backup_id is not None and instance_id is not None:
        raise click.UsageError("--backup and --restore-from exclude each other")
    if instance_id is not None and restore_time is None:
        raise click.UsageError("--restore-from needs --restore-time")
    if backup_id is not None:
        point = {"backupRef": backup_id}
    elif instance_id is not None:
        point = {"instance": instance_id}
    elif restore_time is not None:
        raise click.UsageError("--restore-time goes with --backup or --restore-from")
    else:
        return None
    if restore_time is not None:
        point["restoreTime"] = restore_time
    return point


@instance.command("list")
@with_client
def list_(url: str, token: str, project: str) -> None:
    for inst in _client(url, token, project).request("GET", "/instances")["instances"]:
        click.echo(f"{inst['id']}  {inst['name']:<20} {inst['status']}")


@instance.command("show")
@with_client
@click.argument("instance_id")
def show(url: str, token: str, project: str, instance_id: str) -> None:
    inst = _client(url, token, project).instance(instance_id)
    if inst is None:
        raise click.ClickException(f"instance {instance_id} not found")
    _show(inst)


def _action(name: str, body_of: Any, help_text: str, arg: Any = None) -> Any:
    def command(
        url: str, token: str, project: str, instance_id: str, wait: bool, **extra: Any
    ) -> None:
        c = _client(url, token, project)
        last = c.last_event(instance_id)
        c.request("POST", f"/instances/{instance_id}/action", json=body_of(**extra))
        click.echo(f"{name} accepted for {instance_id}")
        if wait:
            inst = wait_for(c, instance_id, after=last)
            if inst is not None and inst.get("fault"):
                raise click.ClickException(f"{name} failed: {inst['fault'].get('message')}")

    # Click lists arguments in the order their decorators are applied, innermost first.
    if arg is not None:
        command = arg(command)
    command = click.option("--wait", is_flag=True, help="Show progress until ACTIVE.")(command)
    command = click.argument("instance_id")(command)
    return instance.command(name, help=help_text)(with_client(command))


_action(
    "resize",
    lambda flavor: {"resize": {"flavorRef": flavor}},
    "Change the flavor.",
    click.argument("flavor"),
)
_action(
    "resize-volume",
    lambda size: {"resize": {"volume": {"size": size}}},
    "Grow the volume (GB).",
    click.argument("size", type=int),
)
_action("restart", lambda: {"restart": {}}, "Restart the datastore.")
_action("reboot", lambda: {"reboot": {}}, "Reboot the server.")


@instance.command("delete")
@with_client
@click.argument("instance_id")
@click.option("--wait", is_flag=True, help="Show progress until the instance is gone.")
def delete(url: str, token: str, project: str, instance_id: str, wait: bool) -> None:
    c = _client(url, token, project)
    last = c.last_event(instance_id)
    c.request("DELETE", f"/instances/{instance_id}")
    click.echo(f"delete accepted for {instance_id}")
    if wait:
        wait_for(c, instance_id, until=(), gone_ok=True, after=last)
        if c.instance(instance_id) is not None:
            sys.exit(1)


COMMANDS = (instance,)
