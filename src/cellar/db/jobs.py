"""The job queue of the task manager, in the control plane's own database.

A job is written in the same transaction as the change that causes it (the instance row,
its task status), so an accepted request is never lost. Task managers claim jobs with a
lease that they renew while the flow runs; a job whose lease ran out (its task manager
died) is claimed again and its flow resumed from TaskFlow's logbook. One instance runs
one job at a time, oldest first.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session, aliased

from cellar.db.instances import utcnow
from cellar.db.models import Job

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"


def submit_job(
    session: Session, *, kind: str, instance_id: str | None, args: dict[str, Any] | None = None
) -> Job:
    now = utcnow()
    job = Job(
        id=str(uuid.uuid4()),
        kind=kind,
        instance_id=instance_id,
        args=args or {},
        state=QUEUED,
        attempts=0,
        created=now,
        updated=now,
    )
    session.add(job)
    session.flush()
    return job


def any_claimable(session: Session) -> bool:
    """A cheap read (no write lock) before `claim_jobs`: is any job waiting or orphaned?"""
    claimable = or_(
        Job.state == QUEUED, and_(Job.state == RUNNING, Job.lease_expires_at < utcnow())
    )
    return session.scalar(select(Job.id).where(claimable).limit(1)) is not None


def claim_jobs(session: Session, *, owner: str, lease_s: float, limit: int) -> list[Job]:
    """Claim up to `limit` runnable jobs: queued ones, and running ones whose lease expired.

    A job is runnable only when no older unfinished job exists for the same instance, so
    the jobs of one instance run one at a time, in order. Call inside a transaction
    (SQLite: BEGIN IMMEDIATE; PostgreSQL: rows locked with SKIP LOCKED).
    """
    now = utcnow()
    older = aliased(Job)
    # "Older" is (created, id): two jobs stamped with the same time must not both run.
    blocked = exists().where(
        older.instance_id == Job.instance_id,
        or_(older.created < Job.created, and_(older.created == Job.created, older.id < Job.id)),
        older.state.in_((QUEUED, RUNNING)),
    )
    claimable = or_(Job.state == QUEUED, and_(Job.state == RUNNING, Job.lease_expires_at < now))
    query = (
        select(Job)
        .where(claimable, or_(Job.instance_id.is_(None), ~blocked))
        .order_by(Job.created, Job.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Job)
    jobs = list(session.scalars(query))
    expires = now + timedelta(seconds=lease_s)
    for job in jobs:
        job.state = RUNNING
        job.owner = owner
        job.lease_expires_at = expires
        job.attempts += 1
        job.updated = now
    session.flush()
    return jobs


def renew_leases(session: Session, *, owner: str, job_ids: list[str], lease_s: float) -> set[str]:
    """Extend this owner's leases; returns the ids it still holds (the others were lost)."""
    if not job_ids:
        return set()
    now = utcnow()
    session.execute(
        update(Job)
        .where(Job.id.in_(job_ids), Job.owner == owner, Job.state == RUNNING)
        .values(lease_expires_at=now + timedelta(seconds=lease_s), updated=now)
        .execution_options(synchronize_session=False)
    )
    held = session.scalars(
        select(Job.id).where(Job.id.in_(job_ids), Job.owner == owner, Job.state == RUNNING)
    )
    return set(held)


def finish_job(session: Session, *, job_id: str, owner: str, error: str | None = None) -> bool:
    """Mark a job done; False if this owner no longer held it (fencing). A finished job
    keeps no sealed secret, however it ended (a failed create never used them)."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.owner == owner, Job.state == RUNNING)
        .values(state=FAILED if error else SUCCEEDED, error=error, updated=utcnow())
        .execution_options(synchronize_session=False)
    )
    finished = bool(result.rowcount == 1)  # type: ignore[attr-defined]
    if finished:
        forget_sealed(session, job_id=job_id)
    return finished


SEALED = "sealed"  # the key of a job's sealed secrets in its args (`cellar.db.sealing`)


def forget_sealed(session: Session, *, job_id: str) -> bool:
    """Drop a job's sealed secrets once they were used; False if it had none (left)."""
    job = session.get(Job, job_id)
    if job is None or SEALED not in job.args:
        return False
    job.args = {k: v for k, v in job.args.items() if k != SEALED}
    job.updated = utcnow()
    session.flush()
    return True


def unfinished_jobs(session: Session, *, instance_id: str) -> list[Job]:
    return list(
        session.scalars(
            select(Job)
            .where(Job.instance_id == instance_id, Job.state.in_((QUEUED, RUNNING)))
            .order_by(Job.created, Job.id)
        )
    )
