"""The StackService's value objects and errors."""

from __future__ import annotations

from cellar.domain.errors import NotFound
from cellar.orchestration.stacks import Stack, StackNotFound


def test_status_parts() -> None:
    stack = Stack(id="s", name="cellar-i-1", status="ROLLBACK_IN_PROGRESS")
    assert (stack.action, stack.is_in_progress, stack.is_failed) == ("ROLLBACK", True, False)
    assert Stack(id="s", name="n", status="UPDATE_FAILED").is_failed


def test_stack_not_found_is_a_not_found() -> None:
    error = StackNotFound("s-1")
    assert isinstance(error, NotFound)
    assert error.stack_id == "s-1"
    assert "s-1" in error.message
