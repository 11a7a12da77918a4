"""Running the host's tools (ip, nft, losetup, mkfs.xfs, mount, ...) with clear errors."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

from cellar.domain.errors import CellarError

# The Debian packages that provide what the local cloud runs, by command.
TOOLS = {
    "ip": "iproute2",
    "nft": "nftables",
    "losetup": "mount",
    "mount": "mount",
    "mkfs.xfs": "xfsprogs",
    "xfs_growfs": "xfsprogs",
    "runuser": "util-linux",
}


class LocalCloudError(CellarError):
    """A host operation of the local cloud failed; the message names the command."""


def require_root() -> None:
    if os.geteuid() != 0:
        raise LocalCloudError(
            "The local cloud needs root (network namespaces, loop devices, mounts, cgroups "
            "and nftables); run as root or choose --backend fake."
        )


def missing_tools() -> list[str]:
    """`tool (package)` for every tool the local cloud needs that is not installed."""
    return [f"{tool} ({pkg})" for tool, pkg in TOOLS.items() if shutil.which(tool) is None]


def run(
    argv: Sequence[str],
    *,
    netns: str | None = None,
    input: str | None = None,
    check: bool = True,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run a command (inside network namespace `netns` if given); raise with its stderr."""
    cmd = ["ip", "netns", "exec", netns, *argv] if netns else list(argv)
    try:
        result = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise LocalCloudError(f"{cmd[0]} is not installed ({exc})") from exc
    except subprocess.TimeoutExpired as exc:
        raise LocalCloudError(f"{' '.join(cmd)} did not finish in {timeout:g} s") from exc
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise LocalCloudError(f"{' '.join(cmd)} failed ({result.returncode}): {detail}")
    return result
