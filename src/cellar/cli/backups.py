"""`cellar backup create|list|show|delete|schedule`: backups through the API.

A backup is taken by the task manager (pgBackRest) while its instance shows BACKUP.
`--wait` prints each change of the backup's status until it ends: COMPLETED, or FAILED
(its reason is printed and the command exits non-zero); for delete, until it is gone.
Refusals (a backup others depend on, its instance's only full one) print the API's
message and exit non-zero. Restores are `cellar instance create --backup/--restore-time`.
"""

from __future__ import annotations

import time
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from cellar.cli.client import ApiError, Client, console, with_client

Backup = dict[str, Any]

_ENDED = ("COMPLETED", "FAILED", "DELETE_FAILED")


def _get(c: Client, backup_id: str) -> Backup | None:
    response = c.http.get(f"/backups/{backup_id}")
    if response.status_code == 404:
        return None
    if response.status_code >= 400:
        raise ApiError(response)
    result: Backup = response.json()["backup"]
    return result


def wait_backup(
    c: Client, backup_id: str, *, gone_ok: bool = False, timeout: float = 3600
) -> Backup | None:
    """Print each change of the backup's status until it ends (COMPLETED, or FAILED and
    DELETE_FAILED as errors that say why); with `gone_ok`, until it is gone (then None)."""
    last = ""
    deadline = time.monotonic() + timeout
    with console.status(f"backup {backup_id}") as status:
        while True:
            backup = _get(c, backup_id)
            if backup is None:
                if gone_ok:
                    console.print(f"backup {backup_id} deleted")
                    return None
                raise click.ClickException(f"backup {backup_id} disappeared")
            if backup["status"] != last:
                last = backup["status"]
                console.print(f"  backup {backup['name']:<20} {last}")
                status.update(f"backup {backup['name']}: {last}")
            if last in ("FAILED", "DELETE_FAILED"):
                reason = backup.get("fail_reason") or "no reason recorded"
                raise click.ClickException(f"backup {backup_id} is {last}: {reason}")
            if last in _ENDED and not gone_ok:
                return backup
            if time.monotonic() > deadline:
                raise click.ClickException(f"timed out after {timeout:.0f} s; backup is {last}")
            time.sleep(0.2)


def _out() -> Console:
    """Standard output; wide enough for ids when it is not a terminal."""
    plain = Console()
    return plain if plain.is_terminal else Console(width=220)


def _size(backup: Backup) -> str:
    return "-" if backup.get("size") is None else f"{backup['size']} GB"


def _show(backup: Backup) -> None:
    ds = backup["datastore"]
    fields = [
        ("id", backup["id"]),
        ("name", backup["name"]),
        ("description", backup.get("description")),
        ("instance", backup["instance_id"]),
        ("status", backup["status"]),
        ("size", _size(backup)),
        ("parent", backup.get("parent_id")),
        ("locationRef", backup.get("locationRef")),
        ("datastore", f"{ds['type']} {ds['version']}"),
        ("created", backup.get("created")),
        ("updated", backup.get("updated")),
    ]
    if backup.get("fail_reason"):
        fields.append(("fail_reason", backup["fail_reason"]))
    for key, value in fields:
        click.echo(f"{key:>12}: {'-' if value is None else value}")


@click.group()
def backup() -> None:
    """Backups of instances (pgBackRest), full or incremental, and their schedules."""


@backup.command("create")
@with_client
@click.argument("instance_id", metavar="INSTANCE")
@click.option("--name", required=True)
@click.option("--description", default=None)
@click.option("--incremental", is_flag=True, help="On the instance's last completed backup.")
@click.option("--wait", is_flag=True, help="Show the status until COMPLETED or FAILED.")
def create(
    url: str,
    token: str,
    project: str,
    instance_id: str,
    name: str,
    description: str | None,
    incremental: bool,
    wait: bool,
) -> None:
    """Back an instance up."""
    c = Client(url, token, project)
    body: dict[str, Any] = {"name": name, "instance": instance_id}
    if description is not None:
        body["description"] = description
    if incremental:
        body["incremental"] = 1
    made = c.request("POST", "/backups", json={"backup": body})["backup"]
    if not wait:
        click.echo(made["id"])
        return
    click.echo(f"created {made['id']}")
    done = wait_backup(c, made["id"])
    if done is not None:
        _show(done)


@backup.command("list")
@with_client
@click.option("--instance", "instance_id", default=None, help="Only this instance's.")
def list_(url: str, token: str, project: str, instance_id: str | None) -> None:
    params = {"instance_id": instance_id} if instance_id else {}
    found = Client(url, token, project).request("GET", "/backups", params=params)["backups"]
    table = Table("id", "name", "instance", "status", "size", "parent", "created")
    for b in found:
        table.add_row(
            b["id"],
            b["name"],
            b["instance_id"],
            b["status"],
            _size(b),
            b.get("parent_id") or "-",
            b.get("created") or "-",
        )
    _out().print(table)


@backup.command("show")
@with_client
@click.argument("backup_id", metavar="BACKUP")
def show(url: str, token: str, project: str, backup_id: str) -> None:
    found = _get(Client(url, token, project), backup_id)
    if found is None:
        raise click.ClickException(f"backup {backup_id} not found")
    _show(found)


@backup.command("delete")
@with_client
@click.argument("backup_id", metavar="BACKUP")
@click.option("--wait", is_flag=True, help="Show the status until the backup is gone.")
def delete(url: str, token: str, project: str, backup_id: str, wait: bool) -> None:
    c = Client(url, token, project)
    c.request("DELETE", f"/backups/{backup_id}")
    click.echo(f"delete accepted for backup {backup_id}")
    if wait:
        wait_backup(c, backup_id, gone_ok=True)


@backup.command("schedule")
@with_client
@click.argument("instance_id", metavar="INSTANCE")
@click.option("--every-hours", type=float, default=None, help="Take a backup this often.")
@click.option("--keep", type=int, default=None, help="Keep this many full backups.")
@click.option("--keep-days", type=int, default=None, help="Keep backups this many days.")
@click.option("--incremental", is_flag=True, help="Incremental backups between full ones.")
@click.option("--off", is_flag=True, help="End the schedule (its backups stay).")
def schedule(
    url: str,
    token: str,
    project: str,
    instance_id: str,
    every_hours: float | None,
    keep: int | None,
    keep_days: int | None,
    incremental: bool,
    off: bool,
) -> None:
    """Automated backups of an instance, kept by the repository's retention."""
    c = Client(url, token, project)
    path = f"/instances/{instance_id}/backup_schedule"
    if off:
        if every_hours is not None or keep is not None or keep_days is not None or incremental:
            raise click.UsageError("--off takes no other option")
        c.request("DELETE", path)
        click.echo(f"backup schedule of {instance_id} removed")
        return
    if every_hours is None:
        raise click.UsageError("--every-hours is required (or --off)")
    if (keep is None) == (keep_days is None):
        raise click.UsageError("give one of --keep N or --keep-days D")
    retention = {"count": keep} if keep is not None else {"days": keep_days}
    body = {"interval_hours": every_hours, "retention": retention, "incremental": incremental}
    shown = c.request("PUT", path, json={"backup_schedule": body})["backup_schedule"]
    kept = ", ".join(f"{k} {v}" for k, v in shown["retention"].items())
    kind = "incremental" if shown["incremental"] else "full"
    click.echo(
        f"{kind} backups of {instance_id} every {shown['interval_hours']:g} h "
        f"(retention {kept}); next at {shown['next_at']}"
    )


COMMANDS = (backup,)
