"""`cellar cluster create|list|show|grow|shrink|promote|delete`: clusters through the API.

A cluster's members are instances, each of its own flavor and volume, given as
`--member FLAVOR:SIZE[:NAME]`. `--wait` follows the cluster's task and each member's
status and role, printing every change, until the operation ends (task NONE), fails
(task ERROR: its fault is printed and the command exits non-zero) or, for delete, until
the cluster is gone. Clusters and members may be named by id or by name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from cellar.cli.client import ApiError, Client, console, with_client

Cluster = dict[str, Any]


def parse_member(value: str) -> dict[str, Any]:
    """`FLAVOR:SIZE[:NAME]` -> a member of Trove's cluster body."""
    parts = value.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise click.BadParameter(
            f"{value!r} is not FLAVOR:SIZE or FLAVOR:SIZE:NAME (e.g. 2:10:pg-a)"
        )
    try:
        size = int(parts[1])
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: the size {parts[1]!r} is not a whole number of GB"
        ) from None
    member: dict[str, Any] = {"flavorRef": parts[0], "volume": {"size": size}}
    if len(parts) == 3:
        member["name"] = parts[2]
    return member


def _members(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> Any:
    return [parse_member(v) for v in values]


def _get(c: Client, cluster_id: str) -> Cluster | None:
    response = c.http.get(f"/clusters/{cluster_id}")
    if response.status_code == 404:
        return None
    if response.status_code >= 400:
        raise ApiError(response)
    result: Cluster = response.json()["cluster"]
    return result


def _find(c: Client, ref: str) -> Cluster:
    """The cluster with id or name `ref`."""
    found = _get(c, ref)
    if found is not None:
        return found
    named: list[Cluster] = [
        k for k in c.request("GET", "/clusters")["clusters"] if k["name"] == ref
    ]
    if len(named) > 1:
        ids = ", ".join(k["id"] for k in named)
        raise click.ClickException(f"{len(named)} clusters are named {ref!r}: use an id ({ids})")
    if not named:
        raise click.ClickException(f"cluster {ref!r} not found")
    return named[0]


def _member(cluster: Cluster, ref: str) -> dict[str, Any]:
    """The member with id or name `ref` (names are unique within a cluster)."""
    for m in cluster["instances"]:
        if ref in (m["id"], m["name"]):
            return dict(m)
    names = ", ".join(m["name"] for m in cluster["instances"])
    raise click.ClickException(f"cluster {cluster['name']} has no member {ref!r} ({names})")


def _members_by_id(cluster: Cluster) -> dict[str, tuple[str, str, str]]:
    return {m["id"]: (m["name"], m["role"], m["status"]) for m in cluster["instances"]}


def wait_cluster(
    c: Client,
    cluster_id: str,
    *,
    done: Callable[[Cluster], bool] = lambda k: True,
    gone_ok: bool = False,
    timeout: float = 900,
) -> Cluster | None:
    """Print each change of the cluster's task and of its members' status and role until
    its task is NONE and `done` holds; with `gone_ok`, until it is gone (then None)."""
    task, members = "", dict[str, tuple[str, str, str]]()
    deadline = time.monotonic() + timeout
    with console.status(f"cluster {cluster_id}") as status:
        while True:
            cluster = _get(c, cluster_id)
            if cluster is None:
                if gone_ok:
                    console.print(f"cluster {cluster_id} deleted")
                    return None
                raise click.ClickException(f"cluster {cluster_id} disappeared")
            task, members = _print_changes(cluster, task, members)
            status.update(f"cluster {cluster['name']}: {task}")
            if task == "ERROR":
                fault = (cluster.get("fault") or {}).get("message", "no fault recorded")
                raise click.ClickException(f"cluster {cluster_id} is ERROR: {fault}")
            if task == "NONE" and not gone_ok and done(cluster):
                return cluster
            if time.monotonic() > deadline:
                raise click.ClickException(f"timed out after {timeout:.0f} s; task is {task}")
            time.sleep(0.2)


def _print_changes(
    cluster: Cluster, task: str, before: dict[str, tuple[str, str, str]]
) -> tuple[str, dict[str, tuple[str, str, str]]]:
    now_task = cluster["task"]["name"]
    if now_task != task:
        console.print(f"  cluster {cluster['name']:<20} task {now_task}")
    now = _members_by_id(cluster)
    for mid, (name, role, state) in now.items():
        if before.get(mid) != (name, role, state):
            console.print(f"  member  {name:<20} {role:<8} {state}")
    for mid, (name, role, _state) in before.items():
        if mid not in now:
            console.print(f"  member  {name:<20} {role:<8} removed")
    return now_task, now


def _out() -> Console:
    """Standard output; wide enough for ids when it is not a terminal."""
    plain = Console()
    return plain if plain.is_terminal else Console(width=200)


def _show(cluster: Cluster) -> None:
    out = _out()
    ds = cluster["datastore"]
    out.print(
        f"[bold]{cluster['name']}[/] {cluster['id']}  task {cluster['task']['name']}  "
        f"{ds['type']} {ds['version']}  ({cluster.get('provisioning_engine', '')})"
    )
    if cluster.get("fault"):
        out.print(f"[red]fault[/]: {cluster['fault'].get('message')}")
    table = Table("id", "name", "role", "status", "flavor", "size", "address", "lag (bytes)")
    for m in cluster["instances"]:
        lag = m.get("replication_lag_bytes")
        table.add_row(
            m["id"],
            m["name"],
            m["role"],
            m["status"],
            m["flavor"]["id"],
            f"{m['volume']['size']} GB",
            ", ".join(m.get("ip") or []) or m.get("hostname") or "-",
            "-" if lag is None else str(lag),
        )
    out.print(table)


def _finish(c: Client, cluster: Cluster, wait: bool, what: str, **kw: Any) -> None:
    click.echo(f"{what} accepted for cluster {cluster['id']}")
    if wait:
        done = wait_cluster(c, cluster["id"], **kw)
        if done is not None:
            _show(done)


def _wait_option(what: str) -> Callable[[Any], Any]:
    return click.option("--wait", is_flag=True, help=f"Show progress until {what}.")


members_option = click.option(
    "--member",
    "members",
    multiple=True,
    callback=_members,
    required=True,
    help="FLAVOR:SIZE[:NAME], once per member (each its own flavor and volume in GB).",
)


@click.group()
def cluster() -> None:
    """Clusters: a primary and its replicas, each of its own flavor and size."""


@cluster.command("create")
@with_client
@click.argument("name")
@members_option
@click.option("--datastore", default="postgresql", show_default=True)
@click.option("--version", "ds_version", default=None)
@click.option("--allowed-cidr", multiple=True, help="May be given several times.")
@_wait_option("the cluster is built")
def create(
    url: str,
    token: str,
    project: str,
    name: str,
    members: list[dict[str, Any]],
    datastore: str,
    ds_version: str | None,
    allowed_cidr: tuple[str, ...],
    wait: bool,
) -> None:
    """Create a cluster; the first member is the primary."""
    c = Client(url, token, project)
    body: dict[str, Any] = {
        "name": name,
        "datastore": {"type": datastore, **({"version": ds_version} if ds_version else {})},
        "instances": members,
    }
    if allowed_cidr:
        body["access"] = {"allowed_cidrs": list(allowed_cidr)}
    made = c.request("POST", "/clusters", json={"cluster": body})["cluster"]
    if not wait:
        click.echo(made["id"])
        return
    click.echo(f"created {made['id']}")
    done = wait_cluster(c, made["id"])
    if done is not None:
        _show(done)


@cluster.command("list")
@with_client
def list_(url: str, token: str, project: str) -> None:
    table = Table("id", "name", "task", "datastore", "members")
    for k in Client(url, token, project).request("GET", "/clusters")["clusters"]:
        ds = k["datastore"]
        table.add_row(
            k["id"],
            k["name"],
            k["task"]["name"],
            f"{ds['type']} {ds['version']}",
            str(len(k["instances"])),
        )
    _out().print(table)


@cluster.command("show")
@with_client
@click.argument("cluster_ref", metavar="CLUSTER")
def show(url: str, token: str, project: str, cluster_ref: str) -> None:
    """The cluster and its members: role, status, flavor, size, address, lag."""
    _show(_find(Client(url, token, project), cluster_ref))


@cluster.command("grow")
@with_client
@click.argument("cluster_ref", metavar="CLUSTER")
@members_option
@_wait_option("the new members are built")
def grow(
    url: str,
    token: str,
    project: str,
    cluster_ref: str,
    members: list[dict[str, Any]],
    wait: bool,
) -> None:
    """Add replicas."""
    c = Client(url, token, project)
    found = _find(c, cluster_ref)
    c.request("POST", f"/clusters/{found['id']}", json={"grow": members})
    _finish(c, found, wait, "grow")


@cluster.command("shrink")
@with_client
@click.argument("cluster_ref", metavar="CLUSTER")
@click.argument("member_refs", metavar="MEMBER...", nargs=-1, required=True)
@_wait_option("the members are removed")
def shrink(
    url: str, token: str, project: str, cluster_ref: str, member_refs: tuple[str, ...], wait: bool
) -> None:
    """Remove replicas, named by id or name."""
    c = Client(url, token, project)
    found = _find(c, cluster_ref)
    ids = [_member(found, ref)["id"] for ref in member_refs]
    c.request("POST", f"/clusters/{found['id']}", json={"shrink": [{"id": i} for i in ids]})
    gone = set(ids)
    _finish(c, found, wait, "shrink", done=lambda k: not gone & set(_members_by_id(k)))


@cluster.command("promote")
@with_client
@click.argument("cluster_ref", metavar="CLUSTER")
@click.argument("member_ref", metavar="MEMBER")
@_wait_option("the member is the primary")
def promote(
    url: str, token: str, project: str, cluster_ref: str, member_ref: str, wait: bool
) -> None:
    """Make a replica the primary (a planned switchover)."""
    c = Client(url, token, project)
    found = _find(c, cluster_ref)
    mid = _member(found, member_ref)["id"]
    c.request("POST", f"/instances/{mid}/action", json={"promote_to_replica_source": {}})

    def is_primary(k: Cluster) -> bool:
        return any(m["id"] == mid and m["role"] == "primary" for m in k["instances"])

    _finish(c, found, wait, f"promote of {member_ref}", done=is_primary)


@cluster.command("delete")
@with_client
@click.argument("cluster_ref", metavar="CLUSTER")
@_wait_option("the cluster is gone")
def delete(url: str, token: str, project: str, cluster_ref: str, wait: bool) -> None:
    c = Client(url, token, project)
    found = _find(c, cluster_ref)
    c.request("DELETE", f"/clusters/{found['id']}")
    _finish(c, found, wait, "delete", gone_ok=True)


COMMANDS = (cluster,)
