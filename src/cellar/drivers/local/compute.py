"""The local compute service: servers of the local cloud (`cellar.localcloud.servers`),
network namespaces with cgroups and a guest agent inside."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict

from cellar.domain.specs import FlavorSpec
from cellar.domain.status import ServerStatus
from cellar.drivers.base import InvalidRequest, ServiceUnavailable
from cellar.drivers.compute.base import (
    ComputeDriver,
    InvalidServerState,
    Server,
    ServerError,
    ServerNotFound,
)
from cellar.drivers.local.network import group_refusal
from cellar.drivers.local.volume import volume_refusal
from cellar.localcloud.servers import (
    ServerInfo,
    ServerMissing,
    ServerRefused,
    Servers,
    ServerStateRefused,
)
from cellar.localcloud.system import LocalCloudError

SERVER_STATE_MAP = {
    "BUILD": ServerStatus.BUILD,
    "ACTIVE": ServerStatus.ACTIVE,
    "REBOOT": ServerStatus.REBOOT,
    "RESIZE": ServerStatus.RESIZE,
    "VERIFY_RESIZE": ServerStatus.VERIFY_RESIZE,
    "SHUTOFF": ServerStatus.SHUTOFF,
    "ERROR": ServerStatus.ERROR,
}


def _state(status: str) -> ServerStatus:
    return SERVER_STATE_MAP.get(status, ServerStatus.UNKNOWN)


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except ServerMissing as exc:
        raise ServerNotFound(exc.server_id) from exc
    except ServerStateRefused as exc:
        raise InvalidServerState(exc.server_id, _state(exc.state), exc.operation) from exc
    except ServerRefused as exc:
        raise InvalidRequest(exc.message) from exc
    except LocalCloudError as exc:
        # A server operation names volumes and groups too: their refusals are theirs.
        raise (volume_refusal(exc) or group_refusal(exc) or ServerError(exc.message)) from exc
    except sqlite3.OperationalError as exc:
        raise ServiceUnavailable(f"The local cloud's state is busy: {exc}.") from exc
    except OSError as exc:
        raise ServerError(f"The local cloud failed: {exc}.") from exc


def _to_server(info: ServerInfo) -> Server:
    extra = {
        "image": info.image,
        "metadata": dict(info.metadata),
        "flavor": asdict(info.flavor),
        "netns": info.netns,
        "data_dir": str(info.data_dir),
        "boots": info.boots,
    }
    if info.fault:
        extra["fault"] = info.fault
    return Server(
        id=info.id,
        name=info.name,
        status=_state(info.status),
        flavor_id=info.flavor.id,
        addresses=(info.address,) if info.address else (),
        volume_ids=info.volume_ids,
        security_group_ids=info.security_group_ids,
        extra=extra,
    )


class LocalCompute(ComputeDriver):
    def __init__(self, servers: Servers) -> None:
        self._servers = servers

    def list_servers(self) -> list[Server]:
        with _translated():
            return [_to_server(info) for info in self._servers.all()]

    def get_server(self, server_id: str) -> Server:
        with _translated():
            return _to_server(self._servers.get(server_id))

    def find_server(self, name: str) -> Server | None:
        with _translated():
            info = self._servers.find(name)
        return None if info is None else _to_server(info)

    def create_server(
        self,
        *,
        name: str,
        flavor: FlavorSpec,
        image: str,
        security_group_ids: tuple[str, ...] = (),
        user_data: Mapping[str, str] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Server:
        with _translated():
            info = self._servers.create(
                name=name,
                flavor=flavor,
                image=image,
                security_group_ids=security_group_ids,
                user_data=user_data,
                metadata=metadata,
            )
        return _to_server(info)

    def delete_server(self, server_id: str) -> None:
        with _translated():
            self._servers.delete(server_id)

    def reboot_server(self, server_id: str) -> None:
        with _translated():
            self._servers.reboot(server_id)

    def resize_server(self, server_id: str, flavor: FlavorSpec) -> None:
        with _translated():
            self._servers.resize(server_id, flavor)

    def confirm_resize(self, server_id: str) -> None:
        with _translated():
            self._servers.confirm_resize(server_id)

    def revert_resize(self, server_id: str) -> None:
        with _translated():
            self._servers.revert_resize(server_id)

    def attach_volume(self, server_id: str, volume_id: str) -> None:
        with _translated():
            self._servers.attach_volume(server_id, volume_id)

    def detach_volume(self, server_id: str, volume_id: str) -> None:
        with _translated():
            self._servers.detach_volume(server_id, volume_id)
