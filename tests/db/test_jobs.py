"""The task manager's job queue (`cellar.db.jobs`), on SQLite and PostgreSQL.

A negative lease stands for one that has run out (its task manager died): the job is
then claimable at once, without sleeping.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session, sessionmaker

from cellar.db import jobs
from cellar.db.engine import make_session_factory, transaction
from cellar.db.instances import utcnow
from cellar.db.migrate import upgrade
from cellar.db.models import Job

HELD = 60.0
EXPIRED = -1.0


@pytest.fixture
def sessions(empty_engine: Engine) -> Iterator[sessionmaker[Session]]:
    upgrade(empty_engine)
    yield make_session_factory(empty_engine)


def submit(sessions: sessionmaker[Session], instance_id: str | None, kind: str = "reboot") -> str:
    with transaction(sessions) as s:
        return jobs.submit_job(s, kind=kind, instance_id=instance_id).id


def claim(
    sessions: sessionmaker[Session], owner: str, *, lease_s: float = HELD, limit: int = 10
) -> list[str]:
    with transaction(sessions) as s:
        return [j.id for j in jobs.claim_jobs(s, owner=owner, lease_s=lease_s, limit=limit)]


def finish(
    sessions: sessionmaker[Session], job_id: str, owner: str, error: str | None = None
) -> bool:
    with transaction(sessions) as s:
        return jobs.finish_job(s, job_id=job_id, owner=owner, error=error)


def renew(sessions: sessionmaker[Session], owner: str, job_ids: list[str]) -> set[str]:
    with transaction(sessions) as s:
        return jobs.renew_leases(s, owner=owner, job_ids=job_ids, lease_s=HELD)


def get(sessions: sessionmaker[Session], job_id: str) -> Job:
    with transaction(sessions) as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def test_submit_queues_the_job_with_its_args(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        job_id = jobs.submit_job(
            s, kind="resize_volume", instance_id="i-1", args={"size_gb": 4, "why": ["é"]}
        ).id
    job = get(sessions, job_id)
    assert (job.kind, job.instance_id, job.state) == ("resize_volume", "i-1", jobs.QUEUED)
    assert job.args == {"size_gb": 4, "why": ["é"]}
    assert (job.owner, job.lease_expires_at, job.attempts, job.error) == (None, None, 0, None)


def test_a_job_submitted_in_a_failed_transaction_is_not_queued(
    sessions: sessionmaker[Session],
) -> None:
    with pytest.raises(RuntimeError), transaction(sessions) as s:
        jobs.submit_job(s, kind="reboot", instance_id="i-1")
        raise RuntimeError("the request failed after writing its job")
    assert claim(sessions, "tm-a") == []


def test_claim_takes_queued_jobs_oldest_first_up_to_the_limit(
    sessions: sessionmaker[Session],
) -> None:
    ids = [submit(sessions, f"i-{n}") for n in range(3)] + [submit(sessions, None)]
    before = utcnow()

    assert claim(sessions, "tm-a", limit=2) == ids[:2]
    for job_id in ids[:2]:
        job = get(sessions, job_id)
        assert (job.state, job.owner, job.attempts) == (jobs.RUNNING, "tm-a", 1)
        assert job.lease_expires_at is not None
        assert job.lease_expires_at >= before + timedelta(seconds=HELD - 5)
    assert get(sessions, ids[2]).state == jobs.QUEUED

    assert claim(sessions, "tm-a", limit=5) == ids[2:]
    assert claim(sessions, "tm-a") == []


def test_a_second_claimer_gets_nothing_while_the_lease_holds(
    sessions: sessionmaker[Session],
) -> None:
    job_id = submit(sessions, "i-1")
    assert claim(sessions, "tm-a") == [job_id]
    assert claim(sessions, "tm-b") == []
    assert claim(sessions, "tm-a") == []  # the holder does not claim it twice either
    assert get(sessions, job_id).owner == "tm-a"


def test_an_expired_lease_is_claimed_again_by_another_owner(
    sessions: sessionmaker[Session],
) -> None:
    job_id = submit(sessions, "i-1")
    assert claim(sessions, "tm-a", lease_s=EXPIRED) == [job_id]

    assert claim(sessions, "tm-b") == [job_id]
    job = get(sessions, job_id)
    assert (job.state, job.owner, job.attempts) == (jobs.RUNNING, "tm-b", 2)
    assert claim(sessions, "tm-c") == []


def test_finished_jobs_are_never_claimed(sessions: sessionmaker[Session]) -> None:
    ok, bad = submit(sessions, "i-1"), submit(sessions, "i-2")
    assert claim(sessions, "tm-a", lease_s=EXPIRED) == [ok, bad]
    assert finish(sessions, ok, "tm-a")
    assert finish(sessions, bad, "tm-a", error="volume quota exceeded")
    assert claim(sessions, "tm-b") == []
    assert get(sessions, ok).state == jobs.SUCCEEDED
    failed = get(sessions, bad)
    assert (failed.state, failed.error) == (jobs.FAILED, "volume quota exceeded")


def test_a_newer_job_waits_while_an_older_one_of_its_instance_is_queued(
    sessions: sessionmaker[Session],
) -> None:
    other = submit(sessions, "i-2")
    first, second = submit(sessions, "i-1", "resize_flavor"), submit(sessions, "i-1", "reboot")

    assert claim(sessions, "tm-a", limit=1) == [other]
    # `first` is queued: `second` may not overtake it, whatever the limit.
    assert claim(sessions, "tm-b", limit=10) == [first]
    assert get(sessions, second).state == jobs.QUEUED


def test_one_instance_runs_one_job_at_a_time_in_order(sessions: sessionmaker[Session]) -> None:
    first = submit(sessions, "i-1", "resize_flavor")
    second = submit(sessions, "i-1", "reboot")
    third = submit(sessions, "i-1", "delete_instance")
    elsewhere = submit(sessions, "i-2")

    assert claim(sessions, "tm-a") == [first, elsewhere]
    assert claim(sessions, "tm-b") == []  # `first` is running
    assert finish(sessions, first, "tm-a", error="resize failed")  # failed still unblocks
    assert claim(sessions, "tm-b") == [second]
    assert claim(sessions, "tm-c") == []
    assert finish(sessions, second, "tm-b")
    assert claim(sessions, "tm-c") == [third]
    with transaction(sessions) as s:
        assert [j.id for j in jobs.unfinished_jobs(s, instance_id="i-1")] == [third]


def test_an_expired_job_is_resumed_before_newer_jobs_of_its_instance(
    sessions: sessionmaker[Session],
) -> None:
    first, second = submit(sessions, "i-1"), submit(sessions, "i-1")
    assert claim(sessions, "tm-a", lease_s=EXPIRED) == [first]

    assert claim(sessions, "tm-b") == [first]
    assert get(sessions, second).state == jobs.QUEUED


def test_jobs_without_an_instance_do_not_wait_for_each_other(
    sessions: sessionmaker[Session],
) -> None:
    ids = [submit(sessions, None, "audit") for _ in range(3)]
    assert claim(sessions, "tm-a") == ids


def test_renew_leases_returns_only_the_jobs_still_held(sessions: sessionmaker[Session]) -> None:
    lost, held, done = submit(sessions, "i-1"), submit(sessions, "i-2"), submit(sessions, "i-3")
    assert claim(sessions, "tm-a", lease_s=EXPIRED, limit=1) == [lost]
    assert claim(sessions, "tm-b", limit=1) == [lost]
    assert claim(sessions, "tm-a", lease_s=EXPIRED, limit=2) == [held, done]
    assert finish(sessions, done, "tm-a")

    assert renew(sessions, "tm-a", [lost, held, done, "no-such-job"]) == {held}
    assert renew(sessions, "tm-a", []) == set()
    # The renewal extended the lease it ran out of: nobody may take `held` now.
    assert claim(sessions, "tm-c") == []
    assert get(sessions, held).owner == "tm-a"
    assert get(sessions, lost).owner == "tm-b"


def test_finish_is_fenced_against_a_previous_owner(sessions: sessionmaker[Session]) -> None:
    job_id = submit(sessions, "i-1")
    assert claim(sessions, "tm-a", lease_s=EXPIRED) == [job_id]
    assert claim(sessions, "tm-b") == [job_id]

    assert not finish(sessions, job_id, "tm-a")
    assert not finish(sessions, job_id, "tm-a", error="late failure")
    job = get(sessions, job_id)
    assert (job.state, job.owner, job.error) == (jobs.RUNNING, "tm-b", None)

    assert finish(sessions, job_id, "tm-b")
    assert get(sessions, job_id).state == jobs.SUCCEEDED
    assert not finish(sessions, job_id, "tm-b")  # finishing twice is refused too


def test_concurrent_claimers_never_share_a_job(sessions: sessionmaker[Session]) -> None:
    submitted = [submit(sessions, f"i-{n % 7}") for n in range(28)]
    claimed: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(owner: str) -> None:
        try:
            idle = 0
            while idle < 3:
                got = claim(sessions, owner, limit=2)
                idle = 0 if got else idle + 1
                for job_id in got:
                    assert finish(sessions, job_id, owner)
                with lock:
                    claimed.extend((job_id, owner) for job_id in got)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(f"tm-{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    counts = Counter(job_id for job_id, _ in claimed)
    assert sorted(counts) == sorted(submitted)
    assert set(counts.values()) == {1}
    for job_id in submitted:
        assert get(sessions, job_id).attempts == 1


def test_jobs_of_one_instance_submitted_in_the_same_microsecond_still_run_one_at_a_time(
    sessions: sessionmaker[Session],
) -> None:
    # Two API processes may stamp two jobs of one instance with the same time (or
    # clocks a little apart may even invert them): the id breaks the tie.
    first, second = submit(sessions, "i-1"), submit(sessions, "i-1")
    with transaction(sessions) as s:
        same = s.get(Job, first)
        assert same is not None
        s.execute(update(Job).where(Job.id == second).values(created=same.created))
    claimed = claim(sessions, "tm-a")
    assert len(claimed) == 1
    assert claim(sessions, "tm-b") == []
    assert finish(sessions, claimed[0], "tm-a")
    assert claim(sessions, "tm-b") == [({first, second} - set(claimed)).pop()]
