"""Heat's actions and statuses, and how the engine records a state change.

Every change of a stack's or a resource's state is saved with its event at once, as Heat
does (`state_set` then `_add_event`): the event list is the history the API shows.
"""

from __future__ import annotations

from cellar.orchestration.local.store import ResourceRecord, StackRecord, StackStore, now

INIT, CREATE, UPDATE, DELETE, ROLLBACK = "INIT", "CREATE", "UPDATE", "DELETE", "ROLLBACK"
IN_PROGRESS, COMPLETE, FAILED = "IN_PROGRESS", "COMPLETE", "FAILED"


def set_stack_state(
    store: StackStore, stack: StackRecord, action: str, status: str, reason: str
) -> None:
    stack.action, stack.status, stack.status_reason = action, status, reason
    stack.updated_at = now()
    store.save_stack(stack)
    store.add_event(stack.id, stack.name, stack.id, action, status, reason)


def set_resource_state(
    store: StackStore, record: ResourceRecord, action: str, status: str, reason: str
) -> None:
    record.action, record.status, record.status_reason = action, status, reason
    record.updated_at = now()
    store.save_resource(record)
    store.add_event(record.stack_id, record.name, record.physical_id, action, status, reason)
