"""The compute service: servers (Nova's role)."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cellar.domain.specs import FlavorSpec
from cellar.domain.status import ServerStatus
from cellar.drivers.base import DriverError, InvalidRequest, ResourceNotFound


class ServerNotFound(ResourceNotFound):
    def __init__(self, server_id: str) -> None:
        super().__init__("Server", server_id)
        self.server_id = server_id


class ServerError(DriverError):
    """A server operation failed for good (the server may be in ERROR)."""


class InvalidServerState(InvalidRequest):
    """The server's state refuses the operation (Nova answers 409)."""

    def __init__(self, server_id: str, state: ServerStatus, operation: str) -> None:
        super().__init__(f"Server {server_id} is {state.value}: cannot {operation}.")
        self.server_id = server_id
        self.state = state


@dataclass(frozen=True)
class Server:
    id: str
    name: str
    status: ServerStatus
    flavor_id: str
    addresses: tuple[str, ...] = ()
    volume_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


class ComputeDriver(abc.ABC):
    """Servers: create, look up, reboot, resize (with confirm/revert), attach volumes, delete."""

    name: str = "compute"

    @abc.abstractmethod
    def list_servers(self) -> list[Server]: ...

    @abc.abstractmethod
    def get_server(self, server_id: str) -> Server:
        """The server, or `ServerNotFound`."""

    def find_server(self, name: str) -> Server | None:
        """The server with this name, if any: every create looks its resource up first."""
        matches = [s for s in self.list_servers() if s.name == name]
        return matches[0] if matches else None

    @abc.abstractmethod
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
        """Start building a server; it is BUILD until it becomes ACTIVE (or ERROR)."""

    @abc.abstractmethod
    def delete_server(self, server_id: str) -> None:
        """Delete the server (its volumes are detached, not deleted)."""

    @abc.abstractmethod
    def reboot_server(self, server_id: str) -> None:
        """Reboot an ACTIVE server: REBOOT, then ACTIVE again."""

    @abc.abstractmethod
    def resize_server(self, server_id: str, flavor: FlavorSpec) -> None:
        """Resize an ACTIVE server: RESIZE, then VERIFY_RESIZE until confirmed or reverted."""

    @abc.abstractmethod
    def confirm_resize(self, server_id: str) -> None: ...

    @abc.abstractmethod
    def revert_resize(self, server_id: str) -> None: ...

    @abc.abstractmethod
    def attach_volume(self, server_id: str, volume_id: str) -> None:
        """Attach a volume (the volume service then reports it in-use)."""

    @abc.abstractmethod
    def detach_volume(self, server_id: str, volume_id: str) -> None: ...
