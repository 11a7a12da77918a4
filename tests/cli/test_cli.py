"""The `cellar` command as an operator uses it: a real `cellar serve` process tree, the
instance commands talking to it over HTTP, tokens and the audit."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

from cellar.cli import main
from cellar.drivers.fake import FakeCloud
from serving import cellar, cellar_env, holds_name, serving, wait_until


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cellar_env(tmp_path, CELLAR_BACKEND="fake")


@pytest.fixture
def served(env: dict[str, str]) -> Iterator[dict[str, str]]:
    with serving(env) as s:
        yield dict(env, CELLAR_URL=s.url, CELLAR_TOKEN=s.token, CELLAR_PROJECT=s.project)


def test_instance_commands_against_a_running_server(served: dict[str, str]) -> None:
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(main, list(args), env=served, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    out = run("instance", "create", "db1", "--flavor", "1", "--size", "1", "--wait")
    iid = out.split()[1]
    assert "ACTIVE" in out
    assert iid in run("instance", "list")
    run("instance", "resize", iid, "2", "--wait")
    run("instance", "resize-volume", iid, "3", "--wait")
    shown = run("instance", "show", iid)
    assert "status: ACTIVE" in shown and "flavor: 2" in shown and "volume: 3" in shown
    cloud = FakeCloud(Path(served["CELLAR_STATE_DIR"]) / "fake-cloud.sqlite")
    run("instance", "reboot", iid, "--wait")
    assert cloud.call_count("compute.reboot_server") == 1  # the server was rebooted
    run("instance", "restart", iid, "--wait")
    assert cloud.call_count("guest.restart") == 1  # and its datastore restarted
    assert cloud.call_count("compute.reboot_server") == 1
    assert "deleted" in run("instance", "delete", iid, "--wait")
    assert iid not in run("instance", "list")

    refused = runner.invoke(main, ["instance", "resize-volume", iid, "1"], env=served)
    assert refused.exit_code != 0 and "HTTP 404" in refused.output

    audit = cellar(served, "audit")
    assert audit.returncode == 0 and "clean" in audit.stdout


def test_bad_input_is_reported_with_the_field(served: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["instance", "create", "db1", "--flavor", "nope"], env=served)
    assert result.exit_code != 0
    assert "HTTP 400" in result.output and "flavorRef" in result.output


def test_token_issue_prints_the_token_last(env: dict[str, str]) -> None:
    first = cellar(env, "token", "issue", "--project", "a", "--admin")
    second = cellar(env, "token", "issue", "--project", "a")
    assert first.returncode == second.returncode == 0
    tokens = [p.stdout.strip().splitlines()[-1] for p in (first, second)]
    assert tokens[0] != tokens[1] and all(len(t) >= 20 for t in tokens)


def test_audit_finds_a_resource_no_instance_owns(env: dict[str, str], tmp_path: Path) -> None:
    assert cellar(env, "db", "upgrade").returncode == 0
    clean = cellar(env, "audit")
    assert clean.returncode == 0, clean.stdout + clean.stderr

    cloud = FakeCloud(tmp_path / "fake-cloud.sqlite")
    from cellar.drivers.fake import fake_services

    orphan = fake_services(cloud).volume.create_volume(name="cellar-0000-gone", size_gb=1)
    cloud.close()
    dirty = cellar(env, "audit")
    assert dirty.returncode == 1
    assert orphan.id in dirty.stdout and "cellar-0000-gone" in dirty.stdout


def test_unknown_resource_manager_is_refused_with_the_option_named(env: dict[str, str]) -> None:
    result = cellar(env, "taskmanager", "--resource-manager", "heat")
    assert result.returncode == 2
    assert "--resource-manager" in result.stderr and "native" in result.stderr


def test_taskmanager_stops_on_sigterm_and_dies_with_serve(env: dict[str, str]) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cellar", "taskmanager", "--name", "tm-sig"], env=env
    )
    wait_until(
        "the task manager to hold its name",
        lambda: proc.poll() is not None or holds_name(env["CELLAR_STATE_DIR"], "tm-sig"),
        timeout=60,
        every=0.05,
    )
    assert proc.poll() is None, "the task manager ended before it was running"
    # Twice at once, as when `cellar serve` stops it and then dies (PDEATHSIG).
    for _ in range(20):
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0

    with serving(env) as served:
        assert served.proc is not None
        children = psutil.Process(served.proc.pid).children()
        assert children, "serve runs a task manager"
        served.kill()
    _gone, alive = psutil.wait_procs(children, timeout=15)
    assert alive == [], "task managers outlived cellar serve"
