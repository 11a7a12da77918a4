"""The local backend: drivers over the embedded single-machine cloud (`cellar.localcloud`).

Compute, volume and network share one `Servers` (the local cloud's state file and its
kernel objects); DNS and guest are their own drivers, imported only when the backend is
built. Building it needs root, and sets up the cloud's bridge and host firewall.
"""

from __future__ import annotations

from cellar.config import Settings
from cellar.drivers.guest.base import GuestDriver
from cellar.drivers.local.compute import LocalCompute
from cellar.drivers.local.network import LocalNetwork
from cellar.drivers.local.volume import LocalVolume
from cellar.drivers.registry import Services
from cellar.localcloud.servers import AgentCommand, Servers, guest_agent_command, state_path
from cellar.localcloud.state import CloudState

__all__ = ["LocalCompute", "LocalNetwork", "LocalVolume", "build_services", "local_drivers"]


def local_drivers(
    settings: Settings, *, agent_command: AgentCommand = guest_agent_command
) -> tuple[LocalCompute, LocalVolume, LocalNetwork]:
    """Compute, volume and network over the local cloud, started (needs root).

    `agent_command(config dir)` is the argv started inside each server: the real guest
    agent by default, anything else in tests.
    """
    servers = Servers(settings, CloudState(state_path(settings)), agent_command=agent_command)
    servers.start()
    return LocalCompute(servers), LocalVolume(servers.volumes), LocalNetwork(servers.groups)


def build_guest(settings: Settings) -> GuestDriver:
    from cellar.drivers.local.guest import LocalGuestDriver

    return LocalGuestDriver(settings)


def build_services(settings: Settings) -> Services:
    compute, volume, network = local_drivers(settings)
    # Imported here: DNS brings dnslib along, the guest httpx; nobody else needs them.
    from cellar.drivers.local.backup import LocalBackupDriver
    from cellar.drivers.local.dns import LocalDNSDriver
    from cellar.drivers.local.guest import LocalGuestDriver

    return Services(
        compute=compute,
        volume=volume,
        network=network,
        dns=LocalDNSDriver(settings),
        guest=LocalGuestDriver(settings),
        backup=LocalBackupDriver(settings),
    )
