"""`cellar backup ...` and `cellar instance create --backup/--restore-time` against a real
`cellar serve` on the fake cloud (its backup repository refuses what pgBackRest refuses):
backups taken with progress, listed with their parents, a refused delete reported with
the API's message, restores to ACTIVE, schedules set and removed, and bad input reported
with the field it is about."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from cellar.cli import main
from cellar.drivers.fake import FakeCloud, fake_services
from serving import cellar_env, serving


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = cellar_env(tmp_path, CELLAR_BACKEND="fake")
    with serving(env) as s:
        yield dict(env, CELLAR_URL=s.url, CELLAR_TOKEN=s.token, CELLAR_PROJECT=s.project)


def invoke(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def run(env: dict[str, str], *args: str) -> str:
    result = invoke(env, *args)
    assert result.exit_code == 0, result.output
    return result.output


def api(env: dict[str, str]) -> httpx.Client:
    return httpx.Client(
        base_url=f"{env['CELLAR_URL']}/v1.0/{env['CELLAR_PROJECT']}",
        headers={"X-Auth-Token": env["CELLAR_TOKEN"]},
    )


def created(output: str) -> str:
    return re.search(r"created (\S+)", output).group(1)  # type: ignore[union-attr]


def rows(output: str) -> dict[str, list[str]]:
    """The table of `backup list`, by backup name."""
    found: dict[str, list[str]] = {}
    for line in output.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line)[1:-1]]
        if len(cells) == 7 and cells[0] != "id":
            found[cells[1]] = cells
    return found


def active_instance(env: dict[str, str], name: str = "src") -> str:
    out = run(env, "instance", "create", name, "--wait")
    assert "status: ACTIVE" in out, out
    return created(out)


def test_backups_restores_and_refusals(served: dict[str, str]) -> None:
    iid = active_instance(served)

    out = run(served, "backup", "create", iid, "--name", "full", "--description", "d", "--wait")
    full = created(out)
    assert re.search(r"backup full\s+NEW", out) or re.search(r"backup full\s+BUILDING", out)
    assert re.search(r"backup full\s+COMPLETED", out), out
    assert "status: COMPLETED" in out and f"instance: {iid}" in out
    assert re.search(r"locationRef: cellar-\S+/\S+", out) and "parent: -" in out

    out = run(served, "backup", "create", iid, "--name", "incr", "--incremental", "--wait")
    incr = created(out)
    assert f"parent: {full}" in out and "status: COMPLETED" in out

    listed = rows(run(served, "backup", "list"))
    assert listed["full"][0] == full and listed["full"][2:4] == [iid, "COMPLETED"]
    assert listed["full"][4].endswith(" GB") and listed["full"][5] == "-"
    assert listed["incr"][0] == incr and listed["incr"][5] == full
    assert rows(run(served, "backup", "list", "--instance", iid)).keys() == {"full", "incr"}
    assert rows(run(served, "backup", "list", "--instance", "nobody")) == {}

    shown = run(served, "backup", "show", full)
    assert f"id: {full}" in shown and "description: d" in shown and "datastore: postgresql" in shown

    # The parent of an incremental is refused with what the API says, and stays.
    refused = invoke(served, "backup", "delete", full)
    assert refused.exit_code == 1, refused.output
    assert "HTTP 409" in refused.output and incr in refused.output
    assert "delete them first" in refused.output

    # A restore of a backup reaches ACTIVE, with progress.
    out = run(served, "instance", "create", "copy", "--backup", full, "--wait")
    assert "status: ACTIVE" in out, out
    restored = created(out)
    assert restored != iid

    # A point in time inside the source's window, named by the source instance.
    # (The window opens in the second after the one the first backup ended in.)
    deadline = time.monotonic() + 5
    while (until := api(served).get(f"/instances/{iid}").json()["instance"].get(
            "restorable_until")) is None:  # fmt: skip
        assert time.monotonic() < deadline, "no restorable window 5 s after the backups"
        time.sleep(0.05)
    out = run(
        served, "instance", "create", "pitr", "--restore-from", iid, "--restore-time", until,
        "--wait",
    )  # fmt: skip
    assert "status: ACTIVE" in out, out

    out = run(served, "backup", "delete", incr, "--wait")
    assert f"backup {incr} deleted" in out
    assert invoke(served, "backup", "show", incr).exit_code == 1
    assert "incr" not in rows(run(served, "backup", "list"))
    # The last full backup is kept by the repository: refused, with the reason.
    refused = invoke(served, "backup", "delete", full, "--wait")
    assert refused.exit_code == 1 and "only full backup" in refused.output, refused.output


def test_a_bad_restore_time_is_reported_with_the_field(served: dict[str, str]) -> None:
    iid = active_instance(served)
    full = created(run(served, "backup", "create", iid, "--name", "b", "--wait"))

    bad = invoke(served, "instance", "create", "x", "--backup", full, "--restore-time", "yesterday")
    assert bad.exit_code == 1, bad.output
    assert "HTTP 400" in bad.output and "instance.restorePoint.restoreTime" in bad.output

    early = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    bad = invoke(served, "instance", "create", "x", "--restore-from", iid, "--restore-time", early)
    assert bad.exit_code == 1 and "instance.restorePoint.restoreTime" in bad.output, bad.output
    assert "restorable window" in bad.output

    # What the options themselves get wrong is a usage error, before any request.
    for args in (
        ("--restore-time", early),
        ("--restore-from", iid),
        ("--backup", full, "--restore-from", iid, "--restore-time", early),
    ):
        usage = invoke(served, "instance", "create", "x", *args)
        assert usage.exit_code == 2, usage.output
    names = [i["name"] for i in api(served).get("/instances").json()["instances"]]
    assert names == ["src"]


def test_a_failed_backup_prints_its_reason(served: dict[str, str]) -> None:
    iid = active_instance(served)
    cloud = FakeCloud(Path(served["CELLAR_STATE_DIR"]) / "fake-cloud.sqlite")
    fake_services(cloud).guest.stop_db(iid)  # the datastore is down: nothing to copy
    cloud.close()

    failed = invoke(served, "backup", "create", iid, "--name", "b", "--wait")
    assert failed.exit_code == 1, failed.output
    assert re.search(r"backup b\s+FAILED", failed.output)
    assert re.search(r"Error: backup \S+ is FAILED: \S", failed.output), failed.output
    # A failed backup holds nothing: it goes at once.
    bid = created(failed.output)
    assert f"backup {bid} deleted" in run(served, "backup", "delete", bid, "--wait")


def test_schedule_set_and_off(served: dict[str, str]) -> None:
    iid = active_instance(served)
    out = run(served, "backup", "schedule", iid, "--every-hours", "6", "--keep", "3")
    assert "full backups" in out and "every 6 h" in out and "count 3" in out
    shown = api(served).get(f"/instances/{iid}/backup_schedule").json()["backup_schedule"]
    assert shown["interval_hours"] == 6 and shown["retention"] == {"count": 3}

    out = run(
        served, "backup", "schedule", iid, "--every-hours", "12", "--keep-days", "7",
        "--incremental",
    )  # fmt: skip
    assert "incremental backups" in out and "days 7" in out
    shown = api(served).get(f"/instances/{iid}/backup_schedule").json()["backup_schedule"]
    assert shown["retention"] == {"days": 7} and shown["incremental"] is True

    assert "removed" in run(served, "backup", "schedule", iid, "--off")
    assert api(served).get(f"/instances/{iid}/backup_schedule").status_code == 404
    again = invoke(served, "backup", "schedule", iid, "--off")
    assert again.exit_code == 1 and "HTTP 404" in again.output

    for args in (("--keep", "3"), ("--every-hours", "6"), ("--every-hours", "6", "--keep",
                 "3", "--keep-days", "2"), ("--off", "--keep", "3")):  # fmt: skip
        assert invoke(served, "backup", "schedule", iid, *args).exit_code == 2, args
    bad = invoke(served, "backup", "schedule", iid, "--every-hours", "0", "--keep", "3")
    assert bad.exit_code == 1 and "interval_hours" in bad.output, bad.output
