"""The guest contract: prepare a datastore on an ACTIVE server, then control it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from contract_support import (
    Wait,
    active_server,
    instance_spec,
    missing_id,
    verify_resize_server,
)

from cellar.domain.accounts import UserInfo
from cellar.domain.specs import DatabaseSpec, UserSpec
from cellar.domain.status import ServerStatus, ServiceStatus
from cellar.drivers.guest.base import (
    GuestError,
    GuestObjectExists,
    GuestObjectNotFound,
    GuestStatus,
)
from cellar.drivers.registry import Services

RUNNING, SHUTDOWN = ServiceStatus.RUNNING, ServiceStatus.SHUTDOWN


def running_instance(services: Services, wait: Wait) -> tuple[str, str]:
    """A prepared instance whose datastore is RUNNING: (instance id, server id)."""
    server, instance_id = active_server(services, wait), missing_id()
    services.guest.prepare(instance_id, server_id=server.id, spec=instance_spec(instance_id))
    wait.service(services, instance_id, RUNNING)
    return instance_id, server.id


class GuestContract:
    def test_a_never_prepared_instance_is_new(self, services: Services) -> None:
        assert services.guest.status(missing_id()) == GuestStatus(ServiceStatus.NEW, None)

    def test_prepare_starts_the_datastore(self, services: Services, wait: Wait) -> None:
        instance_id, _ = running_instance(services, wait)
        age = services.guest.status(instance_id).age_s
        assert age is not None and age >= 0

    def test_prepare_needs_an_existing_server(self, services: Services) -> None:
        instance_id, server_id = missing_id(), missing_id()
        with pytest.raises(GuestError, match=server_id):
            services.guest.prepare(
                instance_id, server_id=server_id, spec=instance_spec(instance_id)
            )
        assert services.guest.status(instance_id).service is ServiceStatus.NEW

    def test_prepare_needs_an_active_server(self, services: Services, wait: Wait) -> None:
        server, instance_id = verify_resize_server(services, wait), missing_id()
        with pytest.raises(GuestError, match=server.id):
            services.guest.prepare(
                instance_id, server_id=server.id, spec=instance_spec(instance_id)
            )
        assert services.guest.status(instance_id).service is ServiceStatus.NEW

    def test_stop_and_start_the_datastore(self, services: Services, wait: Wait) -> None:
        instance_id, _ = running_instance(services, wait)
        services.guest.stop_db(instance_id)
        wait.service(services, instance_id, SHUTDOWN)
        services.guest.start_db(instance_id)
        wait.service(services, instance_id, RUNNING)

    def test_restart_the_datastore(self, services: Services, wait: Wait) -> None:
        instance_id, _ = running_instance(services, wait)
        services.guest.restart(instance_id)
        wait.service(services, instance_id, RUNNING)

    def test_resize_the_filesystem(self, services: Services, wait: Wait) -> None:
        instance_id, _ = running_instance(services, wait)
        services.guest.resize_fs(instance_id)
        assert services.guest.status(instance_id).service is RUNNING

    def test_the_datastore_starts_when_its_server_reboots(
        self, services: Services, wait: Wait
    ) -> None:
        instance_id, server_id = running_instance(services, wait)
        services.guest.stop_db(instance_id)
        wait.service(services, instance_id, SHUTDOWN)
        services.compute.reboot_server(server_id)
        wait.server(services, server_id, ServerStatus.ACTIVE)
        wait.service(services, instance_id, RUNNING)

    def test_forget_a_guest(self, services: Services, wait: Wait) -> None:
        instance_id, _ = running_instance(services, wait)
        services.guest.forget(instance_id)
        assert services.guest.status(instance_id) == GuestStatus(ServiceStatus.NEW, None)
        services.guest.forget(instance_id)  # Forgetting is idempotent.

    @pytest.mark.parametrize("command", ["stop_db", "start_db", "restart", "resize_fs"])
    def test_commands_need_a_prepared_guest(self, services: Services, command: str) -> None:
        instance_id = missing_id()
        commands: dict[str, Callable[[str], None]] = {
            "stop_db": services.guest.stop_db,
            "start_db": services.guest.start_db,
            "restart": services.guest.restart,
            "resize_fs": services.guest.resize_fs,
        }
        with pytest.raises(GuestError, match=instance_id):
            commands[command](instance_id)

    # Users and databases: what PostgreSQL refuses is refused, reserved names hidden.

    def test_users_and_databases(self, services: Services, wait: Wait) -> None:
        instance_id, _ = running_instance(services, wait)
        guest = services.guest
        guest.create_databases(instance_id, [DatabaseSpec("shop"), DatabaseSpec("hr")])
        assert [d.name for d in guest.list_databases(instance_id)] == ["hr", "shop"]
        with pytest.raises(GuestObjectExists, match="shop"):
            guest.create_databases(instance_id, [DatabaseSpec("new"), DatabaseSpec("shop")])
        with pytest.raises(GuestObjectExists):
            guest.create_databases(instance_id, [DatabaseSpec("postgres")])
        assert "new" not in [d.name for d in guest.list_databases(instance_id)]

        guest.create_users(instance_id, [UserSpec("bob", "pw", ("shop",))])
        assert guest.list_users(instance_id) == [UserInfo("bob", ("shop",))]
        with pytest.raises(GuestObjectExists, match="bob"):
            guest.create_users(instance_id, [UserSpec("bob", "pw")])
        with pytest.raises(GuestObjectNotFound, match="nodb"):
            guest.create_users(instance_id, [UserSpec("carl", "pw", ("nodb",))])
        guest.grant_access(instance_id, "bob", ["hr"])
        guest.revoke_access(instance_id, "bob", "shop")
        with pytest.raises(GuestObjectNotFound):
            guest.revoke_access(instance_id, "bob", "shop")
        guest.update_user(instance_id, "bob", new_name="rob", password="pw2")
        assert guest.list_users(instance_id) == [UserInfo("rob", ("hr",))]
        with pytest.raises(GuestObjectNotFound):
            guest.change_passwords(instance_id, [("rob", "a"), ("bob", "b")])
        guest.delete_user(instance_id, "rob")
        guest.delete_database(instance_id, "hr")
        with pytest.raises(GuestObjectNotFound):
            guest.delete_database(instance_id, "hr")
        assert guest.list_users(instance_id) == []

    def test_root_enable_and_disable(self, services: Services, wait: Wait) -> None:
        instance_id, _ = running_instance(services, wait)
        name, password = services.guest.enable_root(instance_id)
        assert name and password
        assert services.guest.enable_root(instance_id, password="mine") == (name, "mine")
        services.guest.disable_root(instance_id)
