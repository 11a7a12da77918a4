"""Settings, read once from the environment (`CELLAR_*`) and passed down explicitly.

Nothing reads the environment after start-up: every component receives a `Settings`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

BACKENDS = ("fake", "local", "openstack")


def _default_state_dir() -> Path:
    # As root (the local cloud), /var/lib/cellar: the volumes are mounted below the state
    # directory and the postgres user must reach them, which /root (0700) forbids.
    if os.geteuid() == 0:
        return Path("/var/lib/cellar")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "cellar"


@dataclass(frozen=True)
class Settings:
    state_dir: Path = field(default_factory=_default_state_dir)
    database_url: str = ""
    backend: str = "fake"
    resource_manager: str = "native"
    api_host: str = "127.0.0.1"
    api_port: int = 8779
    dns_zone: str = "cellar.internal"
    # The fake cloud: seconds each call takes and each server/volume spends building.
    fake_latency_s: float = 0.0
    # Waits of the task manager.
    poll_interval_s: float = 0.02
    server_timeout_s: float = 120.0
    volume_timeout_s: float = 60.0
    guest_timeout_s: float = 600.0
    # An instance whose guest has reported heartbeats and then stays silent this long
    # shows its datastore as FAILED_TIMEOUT_GUESTAGENT (status ERROR), as Trove's
    # `agent_heartbeat_expiry` does. Instances whose guest never reported are not judged.
    guest_heartbeat_timeout_s: float = 60.0
    # Transient failures are retried this many times, `retry_delay_s` apart.
    retry_attempts: int = 5
    retry_delay_s: float = 0.2
    # Task manager: flows run at once, and how long a claimed job stays claimed
    # without a renewal before another task manager may take it over.
    workers: int = 4
    # The local cloud: the bridge's network (servers get addresses from it; the host is
    # the first address) and the port its DNS server answers on (127.0.0.1).
    local_cidr: str = "10.251.0.0/24"
    local_dns_port: int = 15353
    # The local cloud's bridge; its servers' namespaces, veths, cgroups and host firewall
    # table are named after it, so two clouds on one host (a test's and `cellar serve`'s)
    # never touch each other's objects. At most 15 characters (a Linux interface name).
    local_bridge: str = "cellar0"
    # Task manager processes `cellar serve` runs (each with `workers` threads).
    taskmanagers: int = 1
    job_lease_s: float = 15.0
    # Automatic failover of clusters (off by default): a primary that neither answers nor
    # reports for `cluster_failover_after_s` is fenced and its most advanced replica
    # promoted; each task manager asks every idle primary every `cluster_watch_interval_s`.
    cluster_auto_failover: bool = False
    cluster_failover_after_s: float = 10.0
    cluster_watch_interval_s: float = 1.0
    # How long a backup may take (the repository's copy and check of the set).
    backup_timeout_s: float = 3600.0
    # How often each task manager looks for scheduled backups that are due.
    backup_schedule_check_s: float = 30.0
    # How long an API token issued by `cellar token issue` is valid (a day by default).
    token_ttl_s: float = 86400.0
    # The key that seals secrets a job carries (users' passwords of a create) in the
    # database: a file outside it, `<state_dir>/secret.key` unless given.
    secret_key_file: str = ""
    # Default quotas of a project (Trove's `max_*_per_tenant`); -1 is unlimited. An
    # administrator sets a project's own with `PUT /mgmt/quotas/{project}`.
    quota_instances: int = 10
    quota_ram_mb: int = -1
    quota_volumes_gb: int = 40
    quota_backups: int = 50

    def __post_init__(self) -> None:
        if not self.database_url:
            object.__setattr__(
                self, "database_url", f"sqlite:///{Path(self.state_dir) / 'cellar.sqlite'}"
            )
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}")

    @property
    def local_root(self) -> Path:
        """Everything of the local cloud: its state file, volume images, config drives."""
        return Path(self.state_dir) / "localcloud"

    @property
    def secret_key_path(self) -> Path:
        return Path(self.secret_key_file or Path(self.state_dir) / "secret.key")

    @property
    def fake_cloud_path(self) -> Path:
        return Path(self.state_dir) / "fake-cloud.sqlite"

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def _convert(name: str, raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        return raw.lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if name == "state_dir":
        return Path(raw)
    return raw


def settings_from_env(env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from `CELLAR_<FIELD>` variables, then explicit overrides (CLI options)."""
    env = dict(os.environ) if env is None else env
    defaults = Settings()
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = env.get(f"CELLAR_{f.name.upper()}")
        if raw is not None and raw != "":
            values[f.name] = _convert(f.name, raw, getattr(defaults, f.name))
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "state_dir" in values and "database_url" not in values:
        values["database_url"] = ""
    return Settings(**values)
