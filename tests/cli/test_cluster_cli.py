"""`cellar cluster ...` against a real `cellar serve` on the fake cloud: a heterogeneous
cluster created, listed, shown, grown, shrunk and deleted with progress, and bad input
reported with what is wrong."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cellar.cli import main
from cellar.drivers.fake import FakeCloud
from serving import cellar_env, serving


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = cellar_env(tmp_path, CELLAR_BACKEND="fake")
    with serving(env) as s:
        yield dict(env, CELLAR_URL=s.url, CELLAR_TOKEN=s.token, CELLAR_PROJECT=s.project)


def invoke(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, ["cluster", *args], env=env, catch_exceptions=False)


def run(env: dict[str, str], *args: str) -> str:
    result = invoke(env, *args)
    assert result.exit_code == 0, result.output
    return result.output


def rows(output: str) -> dict[str, list[str]]:
    """The members table of `cluster show`, by member name."""
    found: dict[str, list[str]] = {}
    for line in output.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line)[1:-1]]
        if len(cells) == 8 and cells[0] != "id":
            found[cells[1]] = cells
    return found


def test_cluster_commands_against_a_running_server(served: dict[str, str]) -> None:
    out = run(served, "create", "pg", "--member", "2:2", "--member", "1:1:small", "--wait")
    cid = re.search(r"created (\S+)", out).group(1)  # type: ignore[union-attr]
    # Progress: the task and each member's status as they change.
    assert "task BUILDING" in out and "task NONE" in out
    assert re.search(r"member\s+pg-1\s+primary\s+ACTIVE", out)
    members = rows(out)
    assert members["pg-1"][2:6] == ["primary", "ACTIVE", "2", "2 GB"]
    assert members["small"][2:6] == ["replica", "ACTIVE", "1", "1 GB"]
    assert members["small"][7] == "0", "a replica shows its lag"

    listed = run(served, "list")
    assert cid in listed and "pg" in listed and "NONE" in listed

    assert set(rows(run(served, "show", "pg"))) == {"pg-1", "small"}
    assert set(rows(run(served, "show", cid))) == {"pg-1", "small"}

    out = run(served, "grow", "pg", "--member", "3:4:big", "--wait")
    assert "task GROWING_CLUSTER" in out and "task NONE" in out
    assert rows(out)["big"][2:6] == ["replica", "ACTIVE", "3", "4 GB"]

    small_id = rows(out)["small"][0]
    out = run(served, "shrink", cid, small_id, "big", "--wait")
    assert "task SHRINKING_CLUSTER" in out and re.search(r"member\s+big\s+replica\s+removed", out)
    assert set(rows(out)) == {"pg-1"}

    out = run(served, "delete", "pg", "--wait")
    assert f"cluster {cid} deleted" in out
    assert cid not in run(served, "list")
    gone = invoke(served, "show", cid)
    assert gone.exit_code == 1 and "not found" in gone.output


def test_a_failed_build_prints_the_fault_and_exits_non_zero(served: dict[str, str]) -> None:
    cloud = FakeCloud(Path(served["CELLAR_STATE_DIR"]) / "fake-cloud.sqlite")
    cloud.inject_fault("compute.create_server", nth=2)  # the replica's server
    cloud.close()
    failed = invoke(served, "create", "pg", "--member", "1:1", "--member", "1:1", "--wait")
    assert failed.exit_code == 1, failed.output
    assert "task ERROR" in failed.output
    assert re.search(r"Error: cluster \S+ is ERROR: .*compute.create_server", failed.output)

    assert "deleted" in run(served, "delete", "pg", "--wait")


def test_a_bad_member_is_refused_with_what_is_wrong(served: dict[str, str]) -> None:
    for bad in ("2", "2:big", "2::x", "2:1:x:y"):
        result = invoke(served, "create", "pg", "--member", "1:1", "--member", bad)
        assert result.exit_code == 2, result.output
        assert "--member" in result.output and repr(bad) in result.output

    # What only the API can tell (no such flavor) comes back with the field it is about.
    result = invoke(served, "create", "pg", "--member", "1:1", "--member", "nope:1")
    assert result.exit_code == 1
    assert "HTTP 400" in result.output and "instances[1].flavorRef" in result.output
    assert invoke(served, "list").output.count("pg") == 0


def test_promote_makes_a_replica_the_primary(served: dict[str, str]) -> None:
    out = run(served, "create", "pg", "--member", "2:2", "--member", "1:1:small", "--wait")
    old_primary = rows(out)["pg-1"][0]

    out = run(served, "promote", "pg", "small", "--wait")
    assert "task PROMOTING" in out and "task NONE" in out
    members = rows(out)
    assert members["small"][2:4] == ["primary", "ACTIVE"]
    assert members["pg-1"][2:4] == ["replica", "ACTIVE"]

    # The old primary is a replica now, so it may be shrunk away (by id).
    out = run(served, "shrink", "pg", old_primary, "--wait")
    assert set(rows(out)) == {"small"}

    refused = invoke(served, "promote", "pg", "nobody")
    assert refused.exit_code == 1 and "no member 'nobody'" in refused.output
