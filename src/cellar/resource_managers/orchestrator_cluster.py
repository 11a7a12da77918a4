"""The orchestrator's cluster steps: one stack per cluster (`templates.cluster`), whose
members are laid out in it by their prefixed resource names.

The stack id is on the cluster's row and on every member's row, so a member's own
operations (resize, reboot) find it and change only its prefixed parameters. A replica's
server exists only once the primary's wait condition is signalled, so the members are
taken in order: the primary's server, peer access, guest prepare and READY signal, then
each replica's. Growing or shrinking is the stored template edited
(`with_members`/`without_members`) and a PATCH update: nothing else in the stack moves.

Peer access (`cluster_steps.PeerAccess`) is made through the network driver on the
members' stack-made security groups, not as template data: a member's /32 rule names
another member's address, known only once its server exists, and writing it into every
other member's group would update their groups at each grow.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from cellar.domain.errors import CellarError
from cellar.domain.specs import InstanceSpec
from cellar.orchestration.templates.cluster import (
    cluster_parameters,
    cluster_template,
    prefix_of,
    with_members,
    without_members,
)
from cellar.orchestration.templates.instance import DNS_RECORD, READY_HANDLE
from cellar.resource_managers.base import ManagerContext
from cellar.resource_managers.orchestrator_steps import StackTask

STACK_NAME_PREFIX = "cellar-cluster-"


def cluster_stack_name(cluster_id: str) -> str:
    """The name of a cluster's stack: a create first looks it up by this name."""
    return f"{STACK_NAME_PREFIX}{cluster_id}"


class ClusterStackTask(StackTask):
    """A step on the cluster's stack; `instance_id` is the member it is about (whose
    delete cancels it), `member_ids` the members it changes."""

    def __init__(
        self,
        ctx: ManagerContext,
        cluster_id: str,
        member_ids: Sequence[str],
        *,
        name: str,
    ) -> None:
        super().__init__(ctx, member_ids[0], name=name)
        self.cluster_id = cluster_id
        self.member_ids = tuple(member_ids)

    def cluster_stack_id(self) -> str | None:
        """From the members' rows; else by name (made by a task manager that died before
        it recorded the id)."""
        for member in self.ctx.store.cluster_members(self.cluster_id):
            if member.stack_id:
                return member.stack_id
        found = self.call(self.stacks.find, cluster_stack_name(self.cluster_id))
        return found.id if found is not None else None

    def require_stack(self) -> str:
        stack_id = self.cluster_stack_id()
        if stack_id is None:
            raise CellarError(f"Cluster {self.cluster_id} has no stack.")
        return stack_id

    def record_stack(self, stack_id: str | None) -> None:
        for iid in self.member_ids:
            if stack_id is None:
                self.forget_resources(iid)
            else:
                self.ctx.store.record_resources(iid, stack_id=stack_id)
        self.ctx.store.record_cluster_stack(self.cluster_id, stack_id)

    def user_data(self, members: Sequence[InstanceSpec]) -> dict[str, dict[str, str]]:
        return {m.instance_id: dict(self.services.guest.user_data(m.instance_id)) for m in members}

    def remove_members(self, stack_id: str) -> None:
        """Update the stack to its template without `member_ids` (once it has settled),
        unless it is there already; the members' rows forget their resources."""
        stack = self.wait_settled(stack_id)
        template = self.call(self.stacks.template, stack_id)
        shrunk = without_members(template, self.member_ids)
        if shrunk != template or stack.is_failed:
            self.call(self.stacks.update, stack_id, template=shrunk)
            self.wait_stack(stack_id, "UPDATE", cancellable=False)
        for iid in self.member_ids:
            self.forget_resources(iid)


class NewMembersTask(ClusterStackTask):
    """A step that puts new members (`members`) into the stack."""

    def __init__(
        self, ctx: ManagerContext, cluster_id: str, members: Sequence[InstanceSpec], *, name: str
    ) -> None:
        super().__init__(ctx, cluster_id, [m.instance_id for m in members], name=name)
        self.members = tuple(members)


class CreateClusterStack(NewMembersTask):
    """The cluster's stack, its first member the primary; its id on every row."""

    def execute(self) -> None:
        self.check_not_cancelled()
        stack_id = self.cluster_stack_id()
        if stack_id is None:
            data = self.user_data(self.members)
            stack_id = self.call(
                self.stacks.create,
                cluster_stack_name(self.cluster_id),
                cluster_template(self.members, primary=self.member_ids[0], user_data=data),
                cluster_parameters(self.members, data),
            )
        self.record_stack(stack_id)

    def revert(self, *args: Any, **kwargs: Any) -> None:
        stack_id = self.cluster_stack_id()
        if stack_id is not None:
            self.remove_stack(stack_id)
        self.record_stack(None)


class AddMembers(NewMembersTask):
    """A grow: the stored template with the new members, and their parameter values only
    (PATCH keeps the others'). Not waited for: each new member's wait condition needs its
    guest first. Reverted by taking them out again."""

    def execute(self) -> None:
        self.check_not_cancelled()
        stack_id = self.require_stack()
        for iid in self.member_ids:
            self.ctx.store.record_resources(iid, stack_id=stack_id)
        template = self.call(self.stacks.template, stack_id)
        data = self.user_data(self.members)
        grown = with_members(template, self.members, user_data=data)
        if grown != template:  # else updated already, before a restart
            parameters = cluster_parameters(self.members, data)
            self.call(self.stacks.update, stack_id, template=grown, parameters=parameters)

    def revert(self, *args: Any, **kwargs: Any) -> None:
        stack_id = self.cluster_stack_id()
        if stack_id is None:
            return
        # An update still waiting for a new member's signal fails (and rolls back) now
        # rather than at its wait condition's timeout.
        for iid in self.member_ids:
            with contextlib.suppress(CellarError):
                self.stacks.signal(
                    stack_id,
                    f"{prefix_of(iid)}{READY_HANDLE}",
                    {"status": "FAILURE", "reason": "the grow was reverted", "id": "1"},
                )
        self.remove_members(stack_id)


class RemoveMembers(ClusterStackTask):
    """A shrink: the template without the members, as a stack update."""

    def execute(self) -> None:
        stack_id = self.cluster_stack_id()
        if stack_id is None:
            for iid in self.member_ids:
                self.forget_resources(iid)
            return
        self.retry_if_interrupted(stack_id)
        self.remove_members(stack_id)


class MemberReady(StackTask):
    """A member's datastore is RUNNING: its wait condition is signalled (for a guest that
    does not signal it itself), which lets the replicas' servers be made."""

    def execute(self) -> None:
        self.signal_ready(self.stack_id())


class WaitForClusterStack(ClusterStackTask):
    """Until the stack is complete; then the members' DNS records and hostnames."""

    def execute(self) -> None:
        stack_id = self.require_stack()
        self.retry_if_interrupted(stack_id)
        stack = self.wait_stack(stack_id, ("CREATE", "UPDATE"))
        ids = {r.name: r.physical_id for r in self.call(self.stacks.resources, stack_id)}
        for iid in self.member_ids:
            at = prefix_of(iid)
            hostname = str(stack.outputs.get(f"{at}hostname") or "") or None
            self.ctx.store.record_resources(
                iid, dns_record_id=ids.get(f"{at}{DNS_RECORD}"), hostname=hostname
            )


class DeleteClusterStack(ClusterStackTask):
    """The whole stack; no member owns anything after."""

    def execute(self) -> None:
        stack_id = self.cluster_stack_id()
        if stack_id is not None:
            self.remove_stack(stack_id)
        self.record_stack(None)
