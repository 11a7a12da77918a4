"""The migration resource manager: for a deployment moving from `native` to
`orchestrator` with instances running. New instances are orchestrated; each existing one
keeps the path it was provisioned by (`instances.provisioning_engine`, backfilled to
`native`), for resize, volume resize, reboot, security groups, DNS and delete.

Clusters likewise: a new cluster is orchestrated (one stack); an existing one keeps its
own engine (`clusters.provisioning_engine`, which its members' rows carry) for grow,
shrink and delete."""

from __future__ import annotations

from taskflow.flow import Flow

from cellar.domain.specs import FlavorSpec, InstanceSpec, RuleSpec
from cellar.resource_managers.base import ManagerContext, Operation, ResourceManager
from cellar.resource_managers.native import NativeManager
from cellar.resource_managers.orchestrator import OrchestratorManager

ENGINES: dict[str, type[ResourceManager]] = {
    "native": NativeManager,
    "orchestrator": OrchestratorManager,
}


class MigrationManager(ResourceManager):
    name = "migration"

    def __init__(self, ctx: ManagerContext) -> None:
        super().__init__(ctx)
        self.native = NativeManager(ctx)
        self.orchestrator = OrchestratorManager(ctx)

    @classmethod
    def supports(
        cls, operation: Operation, provisioning_engine: str | None = None, *, member: bool = False
    ) -> bool:
        if operation in (Operation.PROVISION_INSTANCE, Operation.PROVISION_CLUSTER):
            return OrchestratorManager.supports(operation)
        return ENGINES[provisioning_engine or "native"].supports(operation, member=member)

    def _for(self, instance_id: str) -> ResourceManager:
        return self._engine(self.ctx.store.get(instance_id).provisioning_engine)

    def _for_cluster(self, cluster_id: str) -> ResourceManager:
        """The cluster's engine, as its members' rows carry it (all the same: each is
        written with the cluster's); a cluster without live members has nothing to
        orchestrate, and the native path's flows are then empty."""
        members = self.ctx.store.cluster_members(cluster_id)
        return self._engine(members[0].provisioning_engine if members else None)

    def _engine(self, provisioning_engine: str | None) -> ResourceManager:
        return self.orchestrator if provisioning_engine == "orchestrator" else self.native

    def provision_instance(self, spec: InstanceSpec) -> Flow:
        return self.orchestrator.provision_instance(spec)

    def resize_flavor(self, instance_id: str, flavor: FlavorSpec) -> Flow:
        return self._for(instance_id).resize_flavor(instance_id, flavor)

    def resize_volume(self, instance_id: str, size_gb: int) -> Flow:
        return self._for(instance_id).resize_volume(instance_id, size_gb)

    def reboot(self, instance_id: str) -> Flow:
        return self._for(instance_id).reboot(instance_id)

    def delete_instance(self, instance_id: str) -> Flow:
        return self._for(instance_id).delete_instance(instance_id)

    def create_security_group(self, instance_id: str, rules: tuple[RuleSpec, ...]) -> Flow:
        return self._for(instance_id).create_security_group(instance_id, rules)

    def delete_security_group(self, instance_id: str) -> Flow:
        return self._for(instance_id).delete_security_group(instance_id)

    def add_security_group_rule(self, instance_id: str, rule_id: str, rule: RuleSpec) -> Flow:
        return self._for(instance_id).add_security_group_rule(instance_id, rule_id, rule)

    def update_security_group_rule_cidr(self, instance_id: str, rule_id: str, cidr: str) -> Flow:
        return self._for(instance_id).update_security_group_rule_cidr(instance_id, rule_id, cidr)

    def delete_security_group_rule(self, instance_id: str, rule_id: str) -> Flow:
        return self._for(instance_id).delete_security_group_rule(instance_id, rule_id)

    def create_dns_record(self, instance_id: str) -> Flow:
        return self._for(instance_id).create_dns_record(instance_id)

    def delete_dns_record(self, instance_id: str) -> Flow:
        return self._for(instance_id).delete_dns_record(instance_id)

    def provision_cluster(self, cluster_id: str, members: tuple[InstanceSpec, ...]) -> Flow:
        return self.orchestrator.provision_cluster(cluster_id, members)

    def grow_cluster(self, cluster_id: str, members: tuple[InstanceSpec, ...]) -> Flow:
        return self._for_cluster(cluster_id).grow_cluster(cluster_id, members)

    def shrink_cluster(self, cluster_id: str, instance_ids: tuple[str, ...]) -> Flow:
        return self._for_cluster(cluster_id).shrink_cluster(cluster_id, instance_ids)

    def delete_cluster(self, cluster_id: str) -> Flow:
        return self._for_cluster(cluster_id).delete_cluster(cluster_id)
