"""Backups and point-in-time restore as the control plane, the drivers and the guests speak
of them. The engine is pgBackRest (2.45, Debian's); these are its ideas in cellar's words.

- Every instance archives its WAL continuously, from its first boot, into a **stanza**
  (`stanza_name(archive_id(...))`) in its project's repository: its own, or its
  replication group's, shared by the group's members. The stanza outlives the instance:
  restores from a deleted instance read it.
- A **backup set** is one pgBackRest backup of a stanza: full, or incremental on a parent.
- The **restorable window** of a stanza runs from the end of its oldest backup set to the
  last commit its archived WAL holds: any instant inside it can be restored exactly.
- A **restore target** names the source stanza and either a backup set (the data as of
  its end), an instant (every transaction committed up to it, none after; pgBackRest
  picks the backup set), or both.
- **Repository access** is what a guest is given at prepare to archive into its stanza
  and to restore from its project's stanzas: pgBackRest options, and the files (PEM
  certificates and keys) some of them name. A guest holds no other credential: another
  project's stanzas are refused by the repository, whatever the guest does.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

# What `stanza_name` yields: pgBackRest takes letters, digits, `-` and `_`.
_STANZA = re.compile(r"[A-Za-z0-9_-]{1,100}")


def stanza_name(archive_id: str) -> str:
    """The stanza of an archive, for ever: `cellar-<archive id>` (see `archive_id`)."""
    return "cellar-" + re.sub(r"[^A-Za-z0-9_-]", "_", archive_id)


def archive_id(instance_id: str, replication_group: str | None) -> str:
    """Whose stanza an instance archives into: its replication group's when it is a member
    (the members of a group are one PostgreSQL system, with one history of timelines
    across switchovers and failovers: pgBackRest keeps such a system in one stanza, and
    a replica may be a backup's source), its own otherwise. A group made by `replica_of`
    has its primary's id, so the primary keeps the stanza it had alone."""
    return replication_group or instance_id


def archive_of_stanza(stanza: str) -> str:
    """The archive id a stanza was named after (ids are letters, digits and `-`)."""
    return stanza.removeprefix("cellar-")


def valid_stanza(name: str) -> bool:
    return bool(_STANZA.fullmatch(name))


class BackupType(enum.Enum):
    FULL = "full"
    INCREMENTAL = "incr"


@dataclass(frozen=True)
class BackupSet:
    """One backup in a stanza, as the repository reports it.

    `label` is pgBackRest's (`20261202-121704F`, `..._20261202-121713I`); `backup_id` the
    control plane's id it was taken for (recorded with the set), if any. LSNs are byte
    positions (`cellar.domain.replication.lsn_to_int`). `database_size_bytes`: the data
    directory it restores; `repository_size_bytes`: what this set itself adds to the
    repository (compressed; an incremental set's own files only)."""

    label: str
    type: BackupType
    parent_label: str | None
    started_at: datetime
    stopped_at: datetime
    start_lsn: int
    stop_lsn: int
    database_size_bytes: int
    repository_size_bytes: int
    backup_id: str | None = None


@dataclass(frozen=True)
class RestorableWindow:
    """Every instant from `restorable_from` to `restorable_until` (both UTC, inclusive) can
    be restored: from the end of the oldest backup set to the last archived commit."""

    restorable_from: datetime
    restorable_until: datetime

    def __contains__(self, instant: datetime) -> bool:
        return self.restorable_from <= instant <= self.restorable_until

    @classmethod
    def of_archive(cls, oldest_set_end: datetime, last: datetime) -> RestorableWindow | None:
        """From the second after the one the oldest set ended in (a restore to an instant
        starts from a set that ended in an earlier second: set ends are stamped in whole
        seconds, and one that ended in the instant's own second may not be consistent at
        the instant) to `last`; None while that second has not come yet."""
        start = oldest_set_end.replace(microsecond=0) + timedelta(seconds=1)
        return cls(start, last) if last >= start else None


class BackupState(enum.Enum):
    RUNNING = "running"
    COMPLETED = "completed"  # taken and checked (its page checksums, or `verify`)
    FAILED = "failed"


@dataclass(frozen=True)
class BackupProgress:
    """Where one backup (by the control plane's backup id) stands."""

    state: BackupState
    # Percent of the database copied so far, when the engine says (RUNNING).
    percent: float | None = None
    # The set, once COMPLETED.
    backup_set: BackupSet | None = None
    # Why, when FAILED (safe to show).
    error: str | None = None


@dataclass(frozen=True)
class RepositoryAccess:
    """What a guest needs to archive WAL into `stanza` and restore its project's stanzas.

    `options`: pgBackRest options for the guest's configuration (`repo1-host`, ...);
    `files`: options whose value is a file's content (certificates, keys): the guest
    writes each to a file of its own (0600) and sets the option to its path. Options named
    `tls-server-*` make the guest run pgBackRest's TLS server as well, through which the
    repository's host takes the backups (the local cloud's way)."""

    stanza: str
    options: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not valid_stanza(self.stanza):
            raise ValueError(f"stanza {self.stanza!r} is not a valid pgBackRest stanza name")


@dataclass(frozen=True)
class RestoreTarget:
    """What a new instance is restored from (its own `RepositoryAccess` reaches it: the
    source is a stanza of the same project).

    - `label` only: the data as of the end of that backup set;
    - `target_time` only: every transaction committed up to that instant (UTC), none
      after; the engine picks the backup set;
    - both: from that set, up to that instant;
    - neither: everything archived (the end of the WAL)."""

    stanza: str
    label: str | None = None
    target_time: datetime | None = None

    def __post_init__(self) -> None:
        if not valid_stanza(self.stanza):
            raise ValueError(f"stanza {self.stanza!r} is not a valid pgBackRest stanza name")
        if self.target_time is not None and self.target_time.tzinfo is None:
            raise ValueError("target_time must carry its time zone")


class BackupStatus(enum.Enum):
    """A backup as Trove's API shows it (`trove/backup/state.py`): NEW when asked,
    BUILDING while taken, COMPLETED once taken and checked, FAILED (with its reason),
    DELETE_FAILED when its removal from the repository failed; DELETED rows are hidden."""

    NEW = "NEW"
    BUILDING = "BUILDING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    DELETE_FAILED = "DELETE_FAILED"
    DELETED = "DELETED"
