"""The local cloud end to end through `cellar serve --backend local`: real PostgreSQL
instances in network namespaces, reachable by address and DNS name, with their access
rules enforced, surviving a SIGKILL of `cellar serve`, and nothing left after delete."""

from __future__ import annotations

import os
import random
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from cellar.config import Settings, settings_from_env
from serving import Served, cellar, cellar_env, free_port, serving, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local cloud needs root")

PASSWORD = "s3cret-" + uuid.uuid4().hex[:8]


@pytest.fixture
def local_env() -> Iterator[dict[str, str]]:
    # Not under pytest's tmp_path: its parents are 0700 and the postgres user must reach
    # the volumes mounted below the state directory.
    state = Path("/tmp") / f"cellar-test-{uuid.uuid4().hex[:8]}"
    state.mkdir(mode=0o755)
    env = cellar_env(
        state,
        CELLAR_BACKEND="local",
        CELLAR_LOCAL_BRIDGE=f"ct{uuid.uuid4().hex[:6]}",
        CELLAR_LOCAL_CIDR=f"10.252.{random.randrange(1, 250)}.0/24",
        CELLAR_LOCAL_DNS_PORT=str(free_port()),
        CELLAR_GUEST_TIMEOUT_S="120",
    )
    try:
        yield env
    finally:
        from cellar.localcloud.cleanup import leftovers, teardown

        settings = local_settings(env)
        left = leftovers(settings)
        teardown(settings)
        shutil.rmtree(state, ignore_errors=True)
        assert left == [], f"left on the host: {left}"


def local_settings(env: dict[str, str]) -> Settings:
    return settings_from_env({k: v for k, v in env.items() if k.startswith("CELLAR_")})


def create(http: httpx.Client, name: str, **extra: Any) -> str:
    body = {
        "instance": {
            "name": name,
            "flavorRef": "1",
            "volume": {"size": 1},
            "databases": [{"name": "app"}],
            "users": [{"name": "app", "password": PASSWORD, "databases": [{"name": "app"}]}],
            **extra,
        }
    }
    r = http.post("/instances", json=body)
    assert r.status_code == 200, r.text
    return str(r.json()["instance"]["id"])


def show(http: httpx.Client, iid: str) -> dict[str, Any]:
    r = http.get(f"/instances/{iid}")
    assert r.status_code == 200, r.text
    return dict(r.json()["instance"])


def wait_active(http: httpx.Client, iid: str, timeout: float = 180) -> dict[str, Any]:
    def done() -> bool:
        status = show(http, iid)["status"]
        assert status != "ERROR", show(http, iid).get("fault")
        return bool(status == "ACTIVE")

    wait_until(f"{iid} ACTIVE", done, timeout=timeout, every=0.2)
    return show(http, iid)


def connect(address: str) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=address,
        port=5432,
        user="app",
        password=PASSWORD,
        dbname="app",
        connect_timeout=5,
        autocommit=True,
    )


def delete_all(served: Served, ids: list[str]) -> None:
    with served.client() as http:
        for iid in ids:
            assert http.delete(f"/instances/{iid}").status_code == 202
        wait_until(
            "all deleted",
            lambda: all(http.get(f"/instances/{i}").status_code == 404 for i in ids),
            timeout=120,
        )


def test_five_at_once_reach_active_and_leave_nothing(local_env: dict[str, str]) -> None:
    with serving(local_env) as served, served.client() as http:
        ids = [create(http, f"db{i}") for i in range(5)]
        instances = [wait_active(http, iid) for iid in ids]
        for inst in instances:
            with connect(inst["ip"][0]) as conn:
                conn.execute("CREATE TABLE t (v int)")
                conn.execute("INSERT INTO t VALUES (1)")
                assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
        # Enable root: the superuser's new password works over the network, once per call.
        root = http.post(f"/instances/{ids[0]}/root")
        assert root.status_code == 200, root.text
        user = root.json()["user"]
        with psycopg.connect(
            host=instances[0]["ip"][0],
            user=user["name"],
            password=user["password"],
            dbname="postgres",
            connect_timeout=5,
        ) as conn:
            row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            assert row.fetchone() == (True,)
        delete_all(served, ids)
        audit = cellar(local_env, "audit")
        assert audit.returncode == 0, audit.stdout + audit.stderr


def test_access_rules_are_enforced_and_changed_live(local_env: dict[str, str]) -> None:
    settings = local_settings(local_env)
    from cellar.localcloud.network import Network

    host = Network.from_settings(settings).gateway
    with serving(local_env) as served, served.client() as http:
        # Only a documentation network may connect: the host itself may not.
        iid = create(http, "locked", access={"allowed_cidrs": ["192.0.2.0/24"]})
        inst = wait_active(http, iid)
        with pytest.raises(psycopg.OperationalError):
            connect(inst["ip"][0]).close()
        group = next(
            g for g in http.get("/security-groups").json()["security_groups"] if iid in g["name"]
        )
        r = http.post(
            "/security-group-rules",
            json={"security_group_rule": {"group_id": group["id"], "cidr": f"{host}/32"}},
        )
        assert r.status_code == 201, r.text
        wait_until("the new rule", lambda: _can_connect(inst["ip"][0]), timeout=30)
        delete_all(served, [iid])


def _can_connect(address: str) -> bool:
    try:
        connect(address).close()
    except psycopg.OperationalError:
        return False
    return True


def test_sigkill_of_serve_keeps_instances_running(local_env: dict[str, str]) -> None:
    with serving(local_env) as served, served.client() as http:
        iid = create(http, "survivor")
        inst = wait_active(http, iid)
        with connect(inst["ip"][0]) as conn:
            conn.execute("CREATE TABLE kept (v int)")
            conn.execute("INSERT INTO kept SELECT generate_series(1, 100)")
        served.kill()
        # The database keeps serving while the control plane is down ...
        with connect(inst["ip"][0]) as conn:
            assert conn.execute("SELECT count(*) FROM kept").fetchone() == (100,)
        served.start()
        # ... and the restarted control plane finds the instance as it was.
        assert wait_active(http, iid)["ip"] == inst["ip"]
        with connect(inst["ip"][0]) as conn:
            assert conn.execute("SELECT count(*) FROM kept").fetchone() == (100,)
        delete_all(served, [iid])


def data_filesystem_bytes(env: dict[str, str], iid: str) -> int:
    """The size of the filesystem the instance's data lives on, as the host sees it."""
    from cellar.domain.specs import resource_name
    from cellar.localcloud.servers import Servers, state_path
    from cellar.localcloud.state import CloudState

    settings = local_settings(env)
    servers = Servers(settings, CloudState(state_path(settings)))
    server = servers.find(resource_name(iid))
    assert server is not None
    fs = os.statvfs(servers.data_dir(server.id))
    return fs.f_blocks * fs.f_frsize


def database_bytes(env: dict[str, str]) -> bytes:
    """Every byte of the control plane's SQLite database (its WAL too, freed pages too)."""
    path = Path(env["CELLAR_STATE_DIR"]) / "cellar.sqlite"
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def postmaster_started(address: str) -> Any:
    with connect(address) as conn:
        row = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
    assert row is not None
    return row[0]


def test_grow_online_resize_and_reboot_keep_the_data(local_env: dict[str, str]) -> None:
    import threading

    with serving(local_env) as served, served.client() as http:
        iid = create(http, "grower")
        address = wait_active(http, iid)["ip"][0]
        with connect(address) as conn:
            conn.execute("CREATE TABLE rows (v int)")
        size_before = data_filesystem_bytes(local_env, iid)
        started_before = postmaster_started(address)
        # The user's password reached the database, and never the control plane's.
        assert PASSWORD.encode() not in database_bytes(local_env)
        written: list[int] = []
        failures: list[BaseException] = []
        stop = threading.Event()

        def writer() -> None:
            try:
                with connect(address) as conn:
                    while not stop.is_set():
                        conn.execute("INSERT INTO rows VALUES (1)")
                        written.append(1)
            except BaseException as exc:
                failures.append(exc)

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            r = http.post(f"/instances/{iid}/action", json={"resize": {"volume": {"size": 2}}})
            assert r.status_code == 202, r.text
            inst = wait_active(http, iid)
        finally:
            stop.set()
            thread.join()
        assert failures == [] and len(written) > 0
        assert inst["volume"]["size"] == 2 and not inst.get("fault")
        # The filesystem grew online (from 1 GB to 2), the database never stopped.
        size_after = data_filesystem_bytes(local_env, iid)
        assert size_after > 1.5 * size_before, (size_before, size_after)
        assert postmaster_started(address) == started_before

        for action in ({"resize": {"flavorRef": "2"}}, {"reboot": {}}, {"restart": {}}):
            assert http.post(f"/instances/{iid}/action", json=action).status_code == 202
            inst = wait_active(http, iid)
            assert not inst.get("fault"), (action, inst)
            with connect(address) as conn:
                assert conn.execute("SELECT count(*) FROM rows").fetchone() == (len(written),)
            # PostgreSQL was really started again (a resize and a reboot restart the
            # server, a restart the database).
            started = postmaster_started(address)
            assert started > started_before, (action, started_before, started)
            started_before = started
        assert inst["flavor"]["id"] == "2"
        delete_all(served, [iid])


def test_orchestrated_instance_on_the_local_cloud(local_env: dict[str, str]) -> None:
    env = dict(local_env, CELLAR_RESOURCE_MANAGER="orchestrator")
    with serving(env) as served, served.client() as http:
        iid = create(http, "stacked")
        inst = wait_active(http, iid)
        assert inst["provisioning_engine"] == "orchestrator" and inst["stack_id"]
        # The agent signalled its wait condition itself, through the API, with the
        # handle's token (the task manager's own signal would say "RUNNING").
        events = cellar(dict(env, COLUMNS="250"), "stack", "events", inst["stack_id"])
        signals = [line for line in events.stdout.splitlines() if "SIGNAL_COMPLETE" in line]
        assert len(signals) == 1 and "ready_handle" in signals[0], events.stdout
        assert "the datastore is ready" in signals[0]
        with connect(inst["ip"][0]) as conn:
            conn.execute("CREATE TABLE s (v int)")
            conn.execute("INSERT INTO s VALUES (1), (2)")
        # The guest's secret went to the server as a hidden stack parameter, kept sealed.
        from cellar.drivers.local.guest import LocalGuestDriver

        secret = LocalGuestDriver(local_settings(env)).secret(iid)
        stored = database_bytes(env)
        assert secret.encode() not in stored and PASSWORD.encode() not in stored
        size_before = data_filesystem_bytes(env, iid)
        for action in ({"resize": {"volume": {"size": 2}}}, {"reboot": {}}):
            started_before = postmaster_started(inst["ip"][0])
            assert http.post(f"/instances/{iid}/action", json=action).status_code == 202
            inst = wait_active(http, iid)
            assert not inst.get("fault"), (action, inst)
            with connect(inst["ip"][0]) as conn:
                assert conn.execute("SELECT count(*) FROM s").fetchone() == (2,)
            if "reboot" in action:  # the server was really rebooted: PostgreSQL started anew
                assert postmaster_started(inst["ip"][0]) > started_before
            else:
                assert data_filesystem_bytes(env, iid) > 1.5 * size_before
        assert inst["volume"]["size"] == 2
        delete_all(served, [iid])
        audit = cellar(env, "audit")
        assert audit.returncode == 0, audit.stdout + audit.stderr


def test_sigkill_of_serve_during_an_orchestrated_create(local_env: dict[str, str]) -> None:
    """Killed while the guest prepares its database (the stack waits for its signal): the
    restarted task manager fails the dead engine's create and retries it by an update that
    keeps the server and volume; the agent's signal, retried until the API is back, ends
    the wait. One server, data usable, nothing left after the delete."""
    env = dict(local_env, CELLAR_RESOURCE_MANAGER="orchestrator")
    with serving(env) as served, served.client() as http:
        iid = create(http, "phoenix")

        def preparing() -> bool:
            steps = [e["step"] for e in http.get(f"/instances/{iid}/events").json()["events"]]
            return "guest.prepare" in steps

        wait_until("the guest prepare", preparing, timeout=60, every=0.05)
        served.kill()
        served.start()
        inst = wait_active(http, iid)
        events = [
            (e["step"], e["outcome"]) for e in http.get(f"/instances/{iid}/events").json()["events"]
        ]
        assert ("provision_instance", "resumed") in events, events
        with connect(inst["ip"][0]) as conn:
            conn.execute("CREATE TABLE t (v int)")
            conn.execute("INSERT INTO t VALUES (1)")
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
        delete_all(served, [iid])
        audit = cellar(env, "audit")
        assert audit.returncode == 0, audit.stdout + audit.stderr
