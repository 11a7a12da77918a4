"""The task manager: claims jobs, runs each as a persisted TaskFlow flow, renews its
leases, and turns a failed flow into a stored fault and the right instance task.

Crash safety: a job is claimed under a lease and its flow's progress is in the logbook
(`persistence.SqlPathBackend`). A task manager that starts again under the same name
takes its own unfinished jobs back at once; any other takes them once their lease ran
out. TaskFlow then skips the steps already done and runs the interrupted one again
(every step is idempotent).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import Any

from sqlalchemy import Engine, func, select, update
from taskflow import engines, states
from taskflow import exceptions as tf_exc
from taskflow.persistence import models as tf_models

from cellar.config import Settings
from cellar.db import jobs as jobs_repo
from cellar.db.engine import make_engine, make_session_factory, transaction
from cellar.db.instances import utcnow
from cellar.db.models import Job
from cellar.domain.errors import CellarError
from cellar.domain.specs import resource_name
from cellar.drivers.registry import Services, build_services
from cellar.orchestration.local.service import LocalStackService
from cellar.resource_managers import manager_class
from cellar.resource_managers.base import ManagerContext, ResourceManager
from cellar.resource_managers.common import OperationCancelled
from cellar.resource_managers.orchestrator_cluster import cluster_stack_name
from cellar.taskmanager.backup_flows import record_backup_failure
from cellar.taskmanager.backup_schedule import take_due_backups
from cellar.taskmanager.cluster_flows import record_cluster_failure
from cellar.taskmanager.failover_watch import ClusterWatch
from cellar.taskmanager.flows import build_flow, failure_task
from cellar.taskmanager.kinds import JobKind
from cellar.taskmanager.persistence import SqlPathBackend
from cellar.taskmanager.stacks import NEEDS_STACKS, build_stack_service
from cellar.taskmanager.store import DbInstanceStore

log = logging.getLogger(__name__)


class TaskManager:
    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine | None = None,
        services: Services | None = None,
        name: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.engine = engine or make_engine(settings.database_url)
        self.sessions = make_session_factory(self.engine)
        self.store = DbInstanceStore(self.sessions)
        self.services = services or build_services(settings)
        self.name = name or socket.gethostname()
        self.sleep = sleep
        self.backend = SqlPathBackend(self.engine)
        self.stacks: LocalStackService | None = None
        if settings.resource_manager in NEEDS_STACKS:
            self.stacks = build_stack_service(settings, self.sessions, self.services)
        self.ctx = ManagerContext(settings, self.services, self.store, sleep, self.stacks)
        self.pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="job")
        self.running: dict[str, Future[None]] = {}
        self.flow_engines: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.wakeup = threading.Event()
        self.threads: list[threading.Thread] = []

    # Life of the service.

    def start(self) -> None:
        self.release_leases()
        loops = [(self._claim_loop, "claim"), (self._lease_loop, "lease")]
        if self.settings.cluster_auto_failover:
            loops.append((self._watch_loop, "watch"))
        if self.services.backup is not None:
            loops.append((self._schedule_loop, "backups"))
        for target, label in loops:
            thread = threading.Thread(target=target, name=f"taskmanager-{label}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop claiming and suspend running flows after their current step, for at most
        `timeout` seconds; True if every flow suspended (then the leases are released for
        another task manager to take the jobs at once).

        A step can wait much longer (for a guest, for a stack), so after `timeout` the jobs
        still in a step are left as a crash leaves them: their leases held, their flows
        resumed from the last finished step by whoever takes them. The caller then exits
        the process (`cellar taskmanager` does, at once)."""
        self.stopping.set()
        self.wakeup.set()
        deadline = time.monotonic() + timeout
        with self.lock:
            for flow_engine in self.flow_engines.values():
                flow_engine.suspend()
            running = list(self.running.values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        _done, left = futures_wait(running, timeout=timeout)
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if left:
            log.warning(
                "%d jobs still in a step after %.0f s: left to be resumed", len(left), timeout
            )
            return False
        if self.stacks is not None:
            self.stacks.close()  # what no flow waits for any more: retried on resume
        self.release_leases()
        return True

    def release_leases(self) -> None:
        """End this name's leases now: at start, the jobs it held when it died are
        taken back at once; at stop, another task manager may take them at once."""
        with transaction(self.sessions) as s:
            s.execute(
                update(Job)
                .where(Job.owner == self.name, Job.state == jobs_repo.RUNNING)
                .values(lease_expires_at=utcnow())
            )

    def notify(self) -> None:
        """Tell the claim loop that a job may be waiting (in-process submitters)."""
        self.wakeup.set()

    def _claim_loop(self) -> None:
        idle = self.settings.poll_interval_s
        while not self.stopping.is_set():
            try:
                claimed = self.claim_and_dispatch()
            except Exception:
                log.exception("claiming jobs failed")
                claimed = 0
            if not claimed:
                self.wakeup.wait(idle)
                self.wakeup.clear()

    def _lease_loop(self) -> None:
        period = self.settings.job_lease_s / 3
        while not self.stopping.wait(period):
            with self.lock:
                ids = list(self.running)
            try:
                with transaction(self.sessions) as s:
                    held = jobs_repo.renew_leases(
                        s, owner=self.name, job_ids=ids, lease_s=self.settings.job_lease_s
                    )
            except Exception:
                log.exception("renewing leases failed")
                continue
            for lost in set(ids) - held:
                log.warning("lost the lease of job %s: suspending its flow", lost)
                with self.lock:
                    flow_engine = self.flow_engines.get(lost)
                if flow_engine is not None:
                    flow_engine.suspend()

    def _watch_loop(self) -> None:
        """Automatic failover of clusters (`failover_watch`)."""
        watch = ClusterWatch(self.settings, self.sessions, self.services.guest)
        while not self.stopping.wait(self.settings.cluster_watch_interval_s):
            try:
                if watch.check():
                    self.notify()
            except Exception:
                log.exception("watching the clusters failed")

    def _schedule_loop(self) -> None:
        """Scheduled backups (`backup_schedule`)."""
        while not self.stopping.wait(self.settings.backup_schedule_check_s):
            try:
                if take_due_backups(self.sessions):
                    self.notify()
            except Exception:
                log.exception("taking the scheduled backups failed")

    # Jobs.

    def claim_and_dispatch(self) -> int:
        with self.lock:
            free = self.settings.workers - len(self.running)
        if free <= 0:
            return 0
        with transaction(self.sessions, readonly=True) as s:
            if not jobs_repo.any_claimable(s):
                return 0
        with transaction(self.sessions) as s:
            claimed = jobs_repo.claim_jobs(
                s, owner=self.name, lease_s=self.settings.job_lease_s, limit=free
            )
            for job in claimed:
                s.expunge(job)
        for job in claimed:
            future = self.pool.submit(self.run_job, job)
            with self.lock:
                self.running[job.id] = future
            future.add_done_callback(functools.partial(self._forget, job.id))
        return len(claimed)

    def _forget(self, job_id: str, _future: Future[None]) -> None:
        with self.lock:
            self.running.pop(job_id, None)
            self.flow_engines.pop(job_id, None)
        self.wakeup.set()

    def manager_for(self, job: Job) -> ResourceManager:
        return manager_class(self.settings.resource_manager)(self.ctx)

    def run_job(self, job: Job) -> None:
        """Run (or resume) one job's flow to its end; never raises."""
        try:
            self._run_job(job)
        except Exception as exc:
            log.exception("job %s (%s) crashed outside its flow", job.id, job.kind)
            # Not reverted: the instance goes to ERROR with the fault (never stays BUILD
            # or RESIZE with nothing running), and a delete cleans up what was made.
            try:
                self._fail(job, JobKind(job.kind), None, reverted=False, error=exc)
            except Exception:
                log.exception("job %s: recording its failure failed", job.id)
                with contextlib.suppress(Exception), transaction(self.sessions) as s:
                    jobs_repo.finish_job(s, job_id=job.id, owner=self.name, error="internal error")

    def _run_job(self, job: Job) -> None:
        kind = JobKind(job.kind)
        events = _EventRecorder(self.store, job)
        try:
            flow = build_flow(self.manager_for(job), self.store, job)
        except CellarError as exc:
            events.job_failed(str(exc))
            self._fail(job, kind, None, reverted=True, error=exc)
            return
        book, detail = self._logbook(job)
        flow_engine = engines.load(
            flow, flow_detail=detail, book=book, backend=self.backend, engine="serial"
        )
        flow_engine.atom_notifier.register("*", events.on_atom)
        with self.lock:
            self.flow_engines[job.id] = flow_engine
        if job.attempts > 1:
            events.add(kind.value, "resumed", f"resumed by {self.name} (attempt {job.attempts})")
            self._take_over_stack(job, events)
        else:
            events.add(kind.value, "started", "")
        try:
            flow_engine.run()
        except Exception as exc:
            cause = _root_cause(exc)
            reverted = flow_engine.storage.get_flow_state() == states.REVERTED
            events.job_failed(str(cause))
            self._fail(job, kind, events.failed_step, reverted=reverted, error=cause)
            return
        if flow_engine.storage.get_flow_state() == states.SUSPENDED:
            log.info("job %s suspended; its lease will pass it on", job.id)
            return
        events.add(kind.value, "succeeded", "", duration_ms=events.elapsed_ms())
        with transaction(self.sessions) as s:
            jobs_repo.finish_job(s, job_id=job.id, owner=self.name)
        self._drop_logbook(job)

    def _take_over_stack(self, job: Job, events: _EventRecorder) -> None:
        """A resumed job's instance may have a stack operation the dead task manager's
        engine left IN_PROGRESS: it is failed now (this task manager holds the job's
        lease, so no other engine works on it) and the flow's step retries it."""
        if self.stacks is None or job.instance_id is None:
            return
        try:
            if JobKind(job.kind).is_cluster:  # the cluster's one stack, found by its name
                name, stack_id = cluster_stack_name(job.instance_id), None
            else:
                name = resource_name(job.instance_id)
                stack_id = self.store.get(job.instance_id).stack_id
            if not stack_id:  # made, but the dead one did not record it
                found = self.stacks.find(name)
                stack_id = found.id if found is not None else None
        except CellarError:
            return
        if stack_id and self.stacks.take_over(stack_id):
            events.add(
                "stack.take_over",
                "failed",
                f"stack {stack_id}: the operation a stopped task manager left in progress "
                "was failed, to be retried",
            )

    def _fail(
        self, job: Job, kind: JobKind, step: str | None, *, reverted: bool, error: BaseException
    ) -> None:
        if kind.is_backup:
            message = str(error) or type(error).__name__
            try:
                record_backup_failure(self.store, job, message)
            finally:
                with transaction(self.sessions) as s:
                    jobs_repo.finish_job(s, job_id=job.id, owner=self.name, error=message)
                self._drop_logbook(job)
            return
        if kind.is_cluster:
            message = str(error) or type(error).__name__
            try:
                record_cluster_failure(self.store, job, message, _details(error), reverted=reverted)
            finally:
                with transaction(self.sessions) as s:
                    jobs_repo.finish_job(s, job_id=job.id, owner=self.name, error=message)
                self._drop_logbook(job)
            return
        iid = job.instance_id
        # A delete asked while this job ran: the delete job that follows owns the task.
        cancelled = isinstance(error, OperationCancelled) or (
            bool(iid) and kind is not JobKind.DELETE_INSTANCE and self.store.is_deleting(iid or "")
        )
        if iid and not cancelled:
            target = failure_task(kind, step, reverted)
            message = str(error) or type(error).__name__
            self.store.record_fault(iid, message, _details(error))
            if target is not None:
                try:
                    self.store.change_task(iid, target)
                except CellarError:
                    log.exception("could not set task %s on instance %s", target, iid)
        with transaction(self.sessions) as s:
            jobs_repo.finish_job(s, job_id=job.id, owner=self.name, error=str(error) or "failed")
        self._drop_logbook(job)

    def _logbook(self, job: Job) -> tuple[Any, Any]:
        with contextlib.closing(self.backend.get_connection()) as conn:
            try:
                book = conn.get_logbook(job.id)
                return book, book.find(job.id)
            except tf_exc.NotFound:
                book = tf_models.LogBook(f"job-{job.id}", uuid=job.id)
                detail = tf_models.FlowDetail(job.kind, uuid=job.id)
                book.add(detail)
                conn.save_logbook(book)
                return book, detail

    def _drop_logbook(self, job: Job) -> None:
        with (
            contextlib.suppress(tf_exc.NotFound),
            contextlib.closing(self.backend.get_connection()) as conn,
        ):
            conn.destroy_logbook(job.id)

    # For tests and the embedded server.

    def run_until_idle(self, timeout: float = 30.0) -> None:
        """Run jobs in this thread's pool until none is queued or running (tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.claim_and_dispatch()
            with self.lock:
                futures = list(self.running.values())
            for f in futures:
                f.result(timeout=max(0.0, deadline - time.monotonic()))
            if not futures and not self._pending():
                return
            if not futures:
                time.sleep(self.settings.poll_interval_s)
        raise TimeoutError("jobs still pending")

    def _pending(self) -> bool:
        with transaction(self.sessions) as s:
            count = s.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.state.in_((jobs_repo.QUEUED, jobs_repo.RUNNING)))
            )
        return bool(count)


class _EventRecorder:
    """Writes one event row per finished step (TaskFlow's atom notifications)."""

    def __init__(self, store: DbInstanceStore, job: Job) -> None:
        self.store = store
        self.job = job
        self.started: dict[str, float] = {}
        self.t0 = time.monotonic()
        self.failed_step: str | None = None

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.t0) * 1000)

    def add(self, step: str, outcome: str, message: str, duration_ms: int | None = None) -> None:
        if self.job.instance_id:
            self.store.add_event(
                instance_id=self.job.instance_id,
                job_id=self.job.id,
                operation=self.job.kind,
                step=step,
                outcome=outcome,
                message=message,
                duration_ms=duration_ms,
            )

    def job_failed(self, message: str) -> None:
        self.add(self.job.kind, "failed", message, duration_ms=self.elapsed_ms())

    def on_atom(self, state: str, details: dict[str, Any]) -> None:
        name = str(details.get("task_name", "?"))
        if state == states.RUNNING:
            self.started[name] = time.monotonic()
            return
        began = self.started.pop(name, None)
        duration = int((time.monotonic() - began) * 1000) if began is not None else None
        if state == states.SUCCESS:
            # A step may say what it found (a string result): the event carries it.
            result = details.get("result")
            self.add(name, "succeeded", result if isinstance(result, str) else "", duration)
        elif state == states.FAILURE:
            if self.failed_step is None:
                self.failed_step = name
            result = details.get("result")
            message = str(getattr(result, "exception", None) or result)
            self.add(name, "failed", message, duration)
        elif state == states.REVERTED:
            self.add(name, "reverted", "", duration)


def _root_cause(exc: BaseException) -> BaseException:
    """TaskFlow wraps failures; the user wants the first real one."""
    if isinstance(exc, tf_exc.WrappedFailure):
        for failure in exc:
            inner = getattr(failure, "exception", None)
            if isinstance(inner, BaseException):
                return inner
    return exc


def _details(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()
