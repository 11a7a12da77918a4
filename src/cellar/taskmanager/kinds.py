"""Job kinds, and the arguments each carries (`jobs.args`, JSON).

- provision_instance (task BUILDING): {"spec": spec_to_dict(InstanceSpec)}
- resize_flavor (RESIZING): {"flavor": flavor_to_dict(FlavorSpec)}
- resize_volume (RESIZING_VOLUME): {"size_gb": int}
- reboot (REBOOTING): {}
- restart (RESTARTING): {}; a guest task, common to every manager
- delete_instance (DELETING): {}
- add_security_group_rule (task unchanged): {"rule_id": str, "rule": rule_to_dict(RuleSpec)}
- delete_security_group_rule (task unchanged): {"rule_id": str}
- update_security_group_rule_cidr (task unchanged): {"rule_id": str, "cidr": str}

Configuration groups (guest tasks, the same under every manager; task unchanged, then
NONE or RESTART_REQUIRED from what waits for a restart):
- update_overrides: {"values": {name: value as postgresql.conf takes it}}
- unassign_configuration: {}
A provision_instance job's args may carry "overrides" (a group given at create): applied
once the datastore runs, restarting it if a restart-only setting is among them.

Backup jobs (a guest task, the same under every manager):
- backup_instance (task BACKING_UP; the backup NEW then BUILDING): {"backup_id",
  "incremental": bool}
- delete_backup (`jobs.instance_id` is the backup's id: its instance may be gone):
  {"backup_id"}

Cluster jobs carry the cluster's id in `jobs.instance_id` (one job per cluster at a time;
their events are the cluster's):
- provision_cluster (cluster BUILDING, members BUILDING): {"members": [spec dicts]}, the
  primary first
- grow_cluster (GROWING_CLUSTER, new members BUILDING): {"members": [spec dicts]}
- shrink_cluster (SHRINKING_CLUSTER, removed members DELETING): {"instance_ids": [str]}
- delete_cluster (DELETING, every member DELETING): {}
- switchover_cluster (PROMOTING; the candidate PROMOTING): {"candidate", "old_primary",
  "replicas": [the other replicas], "port"}, captured when asked
- failover_cluster (PROMOTING; the old primary EJECTING): {"old_primary", "replicas",
  "port", "reason", "last_primary_lsn": int | None}
- detach_cluster (SHRINKING_CLUSTER; the replica PROMOTING): {"replica", "primary", "port"}:
  the replica promoted into an instance of its own, out of the group
"""

from __future__ import annotations

import enum


class JobKind(enum.Enum):
    PROVISION_INSTANCE = "provision_instance"
    RESIZE_FLAVOR = "resize_flavor"
    RESIZE_VOLUME = "resize_volume"
    REBOOT = "reboot"
    RESTART = "restart"
    DELETE_INSTANCE = "delete_instance"
    ADD_SECURITY_GROUP_RULE = "add_security_group_rule"
    DELETE_SECURITY_GROUP_RULE = "delete_security_group_rule"
    UPDATE_SECURITY_GROUP_RULE_CIDR = "update_security_group_rule_cidr"
    PROVISION_CLUSTER = "provision_cluster"
    GROW_CLUSTER = "grow_cluster"
    SHRINK_CLUSTER = "shrink_cluster"
    DELETE_CLUSTER = "delete_cluster"
    SWITCHOVER_CLUSTER = "switchover_cluster"
    FAILOVER_CLUSTER = "failover_cluster"
    DETACH_CLUSTER = "detach_cluster"
    BACKUP_INSTANCE = "backup_instance"
    DELETE_BACKUP = "delete_backup"
    UPDATE_OVERRIDES = "update_overrides"
    UNASSIGN_CONFIGURATION = "unassign_configuration"

    @property
    def is_backup(self) -> bool:
        return self in (JobKind.BACKUP_INSTANCE, JobKind.DELETE_BACKUP)

    @property
    def is_cluster(self) -> bool:
        return self.value.endswith("_cluster")
