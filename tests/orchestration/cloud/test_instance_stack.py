"""The instance template as a stack on the fake cloud, through LocalStackService."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from cellar.domain.specs import InstanceSpec
from cellar.drivers.registry import Services
from cellar.orchestration.local.service import LocalStackService
from cellar.orchestration.local.template import parse_template
from cellar.orchestration.stacks import REBOOT, Stack, StackError, StackNotFound
from cellar.orchestration.templates import instance_template
from cellar.orchestration.templates.instance import (
    GUEST_TIMEOUT,
    READY_SIGNAL_TOKEN,
    instance_parameters,
)

from ..no_cloud import WatchedSignals
from .conftest import LARGE, SMALL


def spec(volume_size_gb: int = 2) -> InstanceSpec:
    return InstanceSpec(
        instance_id="i-1",
        name="db-i-1",
        project_id="p-1",
        flavor=SMALL,
        volume_size_gb=volume_size_gb,
        datastore="postgresql",
        datastore_version="15",
        image="cellar-postgresql-15",
        ports=(5432,),
        allowed_cidrs=("10.0.0.0/8",),
    )


def wait_until(stacks: LocalStackService, stack_id: str, done: Any, timeout: float = 10) -> Stack:
    deadline = time.monotonic() + timeout
    while True:
        stack = stacks.get(stack_id)
        if done(stack):
            return stack
        assert time.monotonic() < deadline, stack
        time.sleep(0.005)


def settled(stacks: LocalStackService, stack_id: str) -> Stack:
    return wait_until(stacks, stack_id, lambda s: not s.is_in_progress)


def status_of(stacks: LocalStackService, stack_id: str, name: str) -> str:
    return {r.name: r.status for r in stacks.resources(stack_id)}[name]


def guest_token(stacks: LocalStackService, stack_id: str) -> str:
    """The ready-signal token, read from the server's user data as the guest would."""
    engine = stacks.engine
    record = next(r for r in engine.resources(stack_id) if r.name == "server")
    user_data = json.loads(record.properties["user_data"])
    token = user_data[READY_SIGNAL_TOKEN]
    assert isinstance(token, str)
    return token


def test_the_guest_secret_reaches_the_user_data_but_not_the_shown_stack(
    stacks: LocalStackService,
) -> None:
    user_data = {"secret": "s3cr3t-value"}
    stack_id = stacks.create(
        "inst-i-1",
        instance_template(spec(), user_data=user_data),
        instance_parameters(spec(), user_data),
    )
    wait_until(stacks, stack_id, lambda s: status_of(stacks, stack_id, "server") != "INIT_COMPLETE")
    record = next(r for r in stacks.engine.resources(stack_id) if r.name == "server")
    assert json.loads(record.properties["user_data"])["secret"] == "s3cr3t-value"
    stored = stacks.engine.get_stack(stack_id)
    assert "s3cr3t-value" not in json.dumps(stored.template)
    shown = parse_template(stored.template).shown_parameters(stored.parameters)
    assert shown["guest_secret"] == "******"


def create_waiting(stacks: LocalStackService, parameters: dict[str, Any] | None = None) -> str:
    stack_id = stacks.create(
        "inst-i-1", instance_template(spec()), {**instance_parameters(spec()), **(parameters or {})}
    )
    wait_until(
        stacks,
        stack_id,
        lambda s: s.is_failed or status_of(stacks, stack_id, "ready") == "CREATE_IN_PROGRESS",
    )
    return stack_id


def created(stacks: LocalStackService) -> str:
    stack_id = create_waiting(stacks)
    stacks.signal(
        stack_id, "ready_handle", {"status": "SUCCESS"}, token=guest_token(stacks, stack_id)
    )
    assert settled(stacks, stack_id).status == "CREATE_COMPLETE"
    return stack_id


def assert_empty(services: Services) -> None:
    assert services.compute.list_servers() == []
    assert services.volume.list_volumes() == []
    assert services.network.list_security_groups() == []
    assert services.dns.list_records() == []


def test_create_waits_for_the_guest_signal(
    stacks: LocalStackService, services: Services, signals: WatchedSignals
) -> None:
    stack_id = create_waiting(stacks)
    [server] = services.compute.list_servers()
    [volume] = services.volume.list_volumes()
    [group] = services.network.list_security_groups()
    [record] = services.dns.list_records()
    assert server.flavor_id == SMALL.id
    assert volume.size_gb == 2 and volume.attached_to == server.id
    assert group.id in server.security_group_ids
    assert [(r.protocol, r.from_port, r.cidr) for r in group.rules] == [("tcp", 5432, "10.0.0.0/8")]
    assert record.name == spec().hostname and record.data == server.addresses[0]
    signals.read_again()  # the wait condition looked again, and still waits
    assert stacks.get(stack_id).status == "CREATE_IN_PROGRESS"

    with pytest.raises(StackError, match="invalid token"):
        stacks.signal(stack_id, "ready_handle", {"status": "SUCCESS"}, token="wrong")
    with pytest.raises(StackError, match="status"):
        stacks.signal(
            stack_id, "ready_handle", {"status": "DONE"}, token=guest_token(stacks, stack_id)
        )
    assert stacks.get(stack_id).status == "CREATE_IN_PROGRESS"

    stacks.signal(
        stack_id, "ready_handle", {"status": "SUCCESS"}, token=guest_token(stacks, stack_id)
    )
    stack = settled(stacks, stack_id)
    assert stack.status == "CREATE_COMPLETE", stack.status_reason
    assert stack.outputs["server_id"] == server.id
    assert stack.outputs["address"] == server.addresses[0]
    resources = {r.name: r for r in stacks.resources(stack_id)}
    assert resources["server"].physical_id == server.id
    assert resources["volume"].physical_id == volume.id
    assert any(e.action == "SIGNAL" for e in stacks.events(stack_id))


def test_wait_condition_timeout_rolls_back(stacks: LocalStackService, services: Services) -> None:
    stack_id = stacks.create(
        "inst-i-1", instance_template(spec()), {**instance_parameters(spec()), GUEST_TIMEOUT: 1}
    )
    stack = settled(stacks, stack_id)
    assert stack.status == "ROLLBACK_COMPLETE"
    events = stacks.events(stack_id)
    failed = next(e for e in events if e.status == "FAILED" and e.action == "CREATE")
    assert failed.reason == "WaitConditionTimeout: resources.ready: 0 of 1 received"
    assert_empty(services)


def test_failure_signal_fails_the_create(stacks: LocalStackService, services: Services) -> None:
    stack_id = create_waiting(stacks)
    stacks.signal(
        stack_id,
        "ready_handle",
        {"status": "FAILURE", "reason": "initdb failed"},
        token=guest_token(stacks, stack_id),
    )
    stack = settled(stacks, stack_id)
    assert stack.status == "ROLLBACK_COMPLETE"
    assert any(
        "WaitConditionFailure: resources.ready: initdb failed" in e.reason
        for e in stacks.events(stack_id)
    )
    assert_empty(services)


def test_flavor_update_resizes_in_place(stacks: LocalStackService, services: Services) -> None:
    stack_id = created(stacks)
    [before] = services.compute.list_servers()
    stacks.update(stack_id, parameters={"flavor": LARGE.id})
    stack = settled(stacks, stack_id)
    assert stack.status == "UPDATE_COMPLETE", stack.status_reason
    [after] = services.compute.list_servers()
    assert after.id == before.id
    assert after.flavor_id == LARGE.id
    assert after.status.value == "ACTIVE"


def test_volume_grows_in_place_and_never_shrinks(
    stacks: LocalStackService, services: Services
) -> None:
    stack_id = created(stacks)
    [before] = services.volume.list_volumes()
    stacks.update(stack_id, parameters={"volume_size": 5})
    assert settled(stacks, stack_id).status == "UPDATE_COMPLETE"
    [after] = services.volume.list_volumes()
    assert (after.id, after.size_gb) == (before.id, 5)

    stacks.update(stack_id, parameters={"volume_size": 3})
    stack = settled(stacks, stack_id)
    # rolled back: the volume, failed but intact, is kept (needs_replace_failed)
    assert stack.status == "ROLLBACK_COMPLETE", stack.status_reason
    failed = [e for e in stacks.events(stack_id) if e.status == "FAILED"]
    assert [(e.resource_name, e.action) for e in failed] == [
        ("volume", "UPDATE"),
        ("inst-i-1", "UPDATE"),
    ]
    assert "can only grow" in failed[-1].reason
    assert stacks.engine.get_stack(stack_id).parameters["volume_size"] == 5
    [still] = services.volume.list_volumes()
    assert (still.id, still.size_gb) == (before.id, 5)
    assert status_of(stacks, stack_id, "volume") == "UPDATE_COMPLETE"


def test_reboot_signal_reboots_the_server(
    stacks: LocalStackService, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack_id = created(stacks)
    [server] = services.compute.list_servers()
    rebooted: list[str] = []
    reboot = services.compute.reboot_server

    def spy(server_id: str) -> None:
        rebooted.append(server_id)
        reboot(server_id)

    monkeypatch.setattr(services.compute, "reboot_server", spy)
    stacks.signal(stack_id, "server", {"action": REBOOT})
    assert rebooted == [server.id]
    [after] = services.compute.list_servers()
    assert after.status.value == "ACTIVE"
    assert any(
        e.action == "SIGNAL" and e.resource_name == "server" for e in stacks.events(stack_id)
    )
    with pytest.raises(StackError):
        stacks.signal(stack_id, "server", {"action": "explode"})


def test_delete_leaves_nothing(stacks: LocalStackService, services: Services) -> None:
    stack_id = created(stacks)
    stacks.delete(stack_id)
    deadline = time.monotonic() + 10
    while True:
        try:
            stack = stacks.get(stack_id)
        except StackNotFound:
            break
        assert not stack.is_failed, stack.status_reason
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert_empty(services)
    with pytest.raises(StackNotFound):
        stacks.resources(stack_id)


def test_unknown_stack(stacks: LocalStackService) -> None:
    with pytest.raises(StackNotFound):
        stacks.get("nope")
    with pytest.raises(StackNotFound):
        stacks.signal("nope", "server", {"action": REBOOT})


def test_rules_are_reconciled_in_place(stacks: LocalStackService, services: Services) -> None:
    stack_id = created(stacks)
    [group] = services.network.list_security_groups()
    [server] = services.compute.list_servers()
    wider = InstanceSpec(**{**spec().__dict__, "allowed_cidrs": ("10.0.0.0/8", "192.168.0.0/16")})
    stacks.update(stack_id, template=instance_template(wider))
    stack = settled(stacks, stack_id)
    assert stack.status == "UPDATE_COMPLETE", stack.status_reason
    [after] = services.network.list_security_groups()
    assert after.id == group.id
    assert sorted(r.cidr for r in after.rules) == ["10.0.0.0/8", "192.168.0.0/16"]
    assert [s.id for s in services.compute.list_servers()] == [server.id]

    narrower = InstanceSpec(**{**spec().__dict__, "allowed_cidrs": ("192.168.0.0/16",)})
    stacks.update(stack_id, template=instance_template(narrower))
    assert settled(stacks, stack_id).status == "UPDATE_COMPLETE"
    [after] = services.network.list_security_groups()
    assert [r.cidr for r in after.rules] == ["192.168.0.0/16"]


def test_create_adopts_what_exists_by_name(stacks: LocalStackService, services: Services) -> None:
    volume = services.volume.create_volume(name=spec().resource_name, size_gb=2)
    stack_id = created(stacks)
    assert [v.id for v in services.volume.list_volumes()] == [volume.id]
    volumes = [r for r in stacks.resources(stack_id) if r.name == "volume"]
    assert volumes[0].physical_id == volume.id
