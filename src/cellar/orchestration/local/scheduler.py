"""Heat's task scheduler for one operation: tasks run over the dependency graph.

A task is a start/poll pair: `start()` begins the action and returns its poll, which is
called until it returns True. Every task whose requirements are done is started, and the
started ones are polled in turn, so independent resources run concurrently on one thread
while no plugin call blocks. On the first failure no new task is started; those already
running are polled to their end, so no resource is left IN_PROGRESS.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass
class Task:
    start: Callable[[], Callable[[], bool]]  # starts the action, returns its poll
    fail: Callable[[BaseException], str]  # records the failure, returns the reason
    requires: set[str] = field(default_factory=set)


def run_tasks(
    tasks: Mapping[str, Task], cancel: threading.Event, poll_interval: float
) -> list[str]:
    """Run `tasks` in dependency order, concurrently; the failure reasons."""
    waiting = {key: task.requires & tasks.keys() for key, task in tasks.items()}
    dependents: dict[str, list[str]] = defaultdict(list)
    for key, needed in waiting.items():
        for other in needed:
            dependents[other].append(key)
    ready = deque(key for key, needed in waiting.items() if not needed)
    running: dict[str, Callable[[], bool]] = {}
    failures: list[str] = []
    while ready or running:
        if cancel.is_set():
            for key in running:
                failures.append(tasks[key].fail(RuntimeError("Operation cancelled")))
            return failures or ["Operation cancelled"]
        if failures:
            ready.clear()
        while ready:
            key = ready.popleft()
            try:
                running[key] = tasks[key].start()
            except Exception as exc:
                failures.append(tasks[key].fail(exc))
                ready.clear()
        progressed = False
        for key, poll in list(running.items()):
            try:
                done = poll()
            except Exception as exc:
                del running[key]
                failures.append(tasks[key].fail(exc))
                continue
            if done:
                del running[key]
                progressed = True
                for other in dependents[key]:
                    waiting[other].discard(key)
                    if not waiting[other] and not failures:
                        ready.append(other)
        if running and not ready and not progressed:
            time.sleep(poll_interval)
    return failures
