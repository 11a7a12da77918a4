"""Heat's `needs_replace_failed` on the fake cloud: an update keeps a FAILED server or
volume that still exists and is usable (same physical id), and replaces one that is gone.

The records are failed as an engine restart fails them: the stack and the resource are set
IN_PROGRESS, then `fail_interrupted` runs on the store.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from cellar.domain.status import ServerStatus
from cellar.drivers.registry import Services
from cellar.drivers.volume.base import VolumeStatus
from cellar.orchestration.local.context import plugin_for
from cellar.orchestration.local.service import LocalStackService
from cellar.orchestration.local.store import ResourceRecord, engine_went_down, fail_interrupted

from .conftest import LARGE
from .test_instance_stack import created, settled


def record(stacks: LocalStackService, stack_id: str, name: str) -> ResourceRecord:
    [found] = [r for r in stacks.engine.resources(stack_id) if r.name == name and r.current]
    return found


def interrupt(stacks: LocalStackService, stack_id: str, action: str, *names: str) -> None:
    """Leave the stack and resources `names` as an engine that died during `action` does."""
    store = stacks.engine.store
    stack = store.load_stack(stack_id)
    stack.action, stack.status = action, "IN_PROGRESS"
    store.save_stack(stack)
    for name in names:
        target = record(stacks, stack_id, name)
        target.action, target.status = action, "IN_PROGRESS"
        store.save_resource(target)
    assert fail_interrupted(store, stack_id)
    for name in names:
        assert record(stacks, stack_id, name).state == f"{action}_FAILED"


@pytest.mark.parametrize("action", ["UPDATE", "CREATE"])
def test_failed_running_server_is_kept(
    stacks: LocalStackService, services: Services, action: str
) -> None:
    stack_id = created(stacks)
    [server] = services.compute.list_servers()
    interrupt(stacks, stack_id, action, "server")
    assert stacks.get(stack_id).status == f"{action}_FAILED"

    stacks.update(stack_id)
    stack = settled(stacks, stack_id)
    assert stack.status == "UPDATE_COMPLETE", stack.status_reason
    [after] = services.compute.list_servers()
    assert after.id == server.id
    kept = record(stacks, stack_id, "server")
    assert kept.physical_id == server.id
    # Heat's _persist_update_no_change: COMPLETE under the action that failed
    assert kept.state == f"{action}_COMPLETE"
    assert kept.status_reason != engine_went_down("resource", action)


def test_failed_server_updated_in_place(stacks: LocalStackService, services: Services) -> None:
    stack_id = created(stacks)
    [server] = services.compute.list_servers()
    interrupt(stacks, stack_id, "UPDATE", "server")
    stacks.update(stack_id, parameters={"flavor": LARGE.id})
    stack = settled(stacks, stack_id)
    assert stack.status == "UPDATE_COMPLETE", stack.status_reason
    [after] = services.compute.list_servers()
    assert (after.id, after.flavor_id) == (server.id, LARGE.id)
    assert record(stacks, stack_id, "server").state == "UPDATE_COMPLETE"


def test_failed_server_that_is_gone_is_replaced(
    stacks: LocalStackService, services: Services
) -> None:
    stack_id = created(stacks)
    [server] = services.compute.list_servers()
    [volume] = services.volume.list_volumes()
    interrupt(stacks, stack_id, "UPDATE", "server")
    services.compute.delete_server(server.id)

    stacks.update(stack_id)
    stack = settled(stacks, stack_id)
    assert stack.status == "UPDATE_COMPLETE", stack.status_reason
    [replacement] = services.compute.list_servers()
    assert replacement.id != server.id
    assert record(stacks, stack_id, "server").physical_id == replacement.id
    assert record(stacks, stack_id, "server").state == "CREATE_COMPLETE"
    assert services.volume.get_volume(volume.id).attached_to == replacement.id
    assert stack.outputs["server_id"] == replacement.id
    assert len([r for r in stacks.engine.resources(stack_id) if r.name == "server"]) == 1


def test_failed_volume_is_kept_while_usable(stacks: LocalStackService, services: Services) -> None:
    stack_id = created(stacks)
    [volume] = services.volume.list_volumes()
    interrupt(stacks, stack_id, "UPDATE", "volume")
    stacks.update(stack_id, parameters={"volume_size": 4})
    stack = settled(stacks, stack_id)
    assert stack.status == "UPDATE_COMPLETE", stack.status_reason
    [after] = services.volume.list_volumes()
    assert (after.id, after.size_gb) == (volume.id, 4)
    assert record(stacks, stack_id, "volume").state == "UPDATE_COMPLETE"


def _plugin(stacks: LocalStackService, stack_id: str, name: str) -> Any:
    return plugin_for(stacks.engine.registry, record(stacks, stack_id, name))


def test_server_in_error_or_gone_needs_replacing(
    stacks: LocalStackService, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack_id = created(stacks)
    plugin = _plugin(stacks, stack_id, "server")
    assert plugin.needs_replace_failed() is False
    get_server = services.compute.get_server

    def in_error(server_id: str) -> Any:
        return dataclasses.replace(get_server(server_id), status=ServerStatus.ERROR)

    monkeypatch.setattr(services.compute, "get_server", in_error)
    assert plugin.needs_replace_failed() is True
    monkeypatch.setattr(services.compute, "get_server", get_server)
    services.compute.delete_server(plugin.physical_id)
    assert plugin.needs_replace_failed() is True


@pytest.mark.parametrize("status", [VolumeStatus.ERROR, VolumeStatus.DELETING])
def test_volume_in_error_or_deleting_needs_replacing(
    stacks: LocalStackService,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
    status: VolumeStatus,
) -> None:
    stack_id = created(stacks)
    plugin = _plugin(stacks, stack_id, "volume")
    assert plugin.needs_replace_failed() is False
    get_volume = services.volume.get_volume

    def broken(volume_id: str) -> Any:
        return dataclasses.replace(get_volume(volume_id), status=status)

    monkeypatch.setattr(services.volume, "get_volume", broken)
    assert plugin.needs_replace_failed() is True


def test_failed_attachment_and_group_are_kept(
    stacks: LocalStackService, services: Services
) -> None:
    stack_id = created(stacks)
    [server] = services.compute.list_servers()
    [volume] = services.volume.list_volumes()
    [group] = services.network.list_security_groups()
    ids = {
        n: record(stacks, stack_id, n).physical_id for n in ("volume_attachment", "security_group")
    }
    interrupt(stacks, stack_id, "CREATE", "volume_attachment", "security_group")

    stacks.update(stack_id)
    stack = settled(stacks, stack_id)
    assert stack.status == "UPDATE_COMPLETE", stack.status_reason
    for name, physical_id in ids.items():
        assert record(stacks, stack_id, name).physical_id == physical_id
        assert record(stacks, stack_id, name).state == "CREATE_COMPLETE"
    assert services.volume.get_volume(volume.id).attached_to == server.id
    assert [g.id for g in services.network.list_security_groups()] == [group.id]


def test_attachment_of_a_detached_volume_needs_replacing(
    stacks: LocalStackService, services: Services
) -> None:
    stack_id = created(stacks)
    plugin = _plugin(stacks, stack_id, "volume_attachment")
    assert plugin.needs_replace_failed() is False
    server_id, volume_id = plugin.properties["instance_uuid"], plugin.properties["volume_id"]
    services.compute.detach_volume(server_id, volume_id)
    assert plugin.needs_replace_failed() is True


def test_a_server_in_error_is_not_adopted(
    stacks: LocalStackService, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replacement's create finds the server it replaces by name: one in ERROR must not
    be adopted (it would fail at once, and go with the old record)."""
    stack_id = created(stacks)
    old = _plugin(stacks, stack_id, "server")
    find_server = services.compute.find_server

    def in_error(name: str) -> Any:
        found = find_server(name)
        return None if found is None else dataclasses.replace(found, status=ServerStatus.ERROR)

    monkeypatch.setattr(services.compute, "find_server", in_error)
    new = type(old)("server", old.properties, "", {})
    new.handle_create()
    assert new.physical_id not in ("", old.physical_id)
    assert new.data["server_id"] == new.physical_id


def test_a_server_whose_id_was_never_recorded_is_kept_once(
    stacks: LocalStackService, services: Services
) -> None:
    """The engine died between the cloud making the server and the record learning its id
    (the record holds the engine's placeholder id). The retried update replaces the
    record, whose create finds the server by name and adopts it; the old record's delete
    must not then delete that same server by name."""
    stack_id = created(stacks)
    [server] = services.compute.list_servers()
    store = stacks.engine.store
    server_record = record(stacks, stack_id, "server")
    server_record.physical_id = "placeholder-never-a-server"
    server_record.data = {}
    store.save_resource(server_record)
    interrupt(stacks, stack_id, "CREATE", "server")

    stacks.update(stack_id)
    stack = settled(stacks, stack_id)
    assert stack.status == "UPDATE_COMPLETE", stack.status_reason
    [after] = services.compute.list_servers()
    assert after.id == server.id and after.status is ServerStatus.ACTIVE
    assert record(stacks, stack_id, "server").physical_id == server.id
