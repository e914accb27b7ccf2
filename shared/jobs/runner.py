"""Executing a stream's jobs one at a time, in `seq` order, exactly once.

A stream is a tenant's ledger (every kind that reads or writes its books) or one integration's dispatches
(`shared/jobs/kinds.py`). Who fences whom:
- The Redis lease keeps a second worker from even trying; PostgreSQL is the fence. Every transaction that
  claims or executes a job starts with `pg_advisory_xact_lock(stream)`, and an execution commits only if the
  job is still `running` under the attempt number it claimed. A worker that lost its lease while paused either
  finishes before the next holder can claim (its commit is then seen, and the job is not run again), or finds
  its attempt superseded and rolls back. A worker killed mid-job loses its connection, so its transaction
  rolls back whole and the fence is released.
- Waiting is bounded: the fence wait gives up after `db_lock_timeout_ms` (the drain leaves; the relay wakes
  the stream again later), and PostgreSQL ends a transaction left idle by a frozen worker after
  `db_idle_in_transaction_timeout_ms`, which releases the fence.

One transaction per job: executing job N, marking it finished and claiming job N+1 commit together, so a small
job costs one transaction (plus the first claim of a drain). A claim is committed before its work starts, so
an attempt is counted even when the worker dies during it.

Attempts: an attempt that raised (a bug, a poison input) counts towards `job_max_attempts`; an attempt whose
worker died without recording anything (killed, out of memory, a lost node), or whose database connection was
ended or whose lock wait timed out (the infrastructure's failure, not the input's), counts towards
`job_max_lost_attempts` and is retried after a back-off (`job_retry_backoff_seconds`, doubling), so a fleet
restart does not exhaust a valid job. Either cap fails the job with INTERNAL/ATTEMPTS_EXHAUSTED and lets the
stream move on.

Waking: a message only says "this stream has work". A task sets the stream's wake flag, then tries the lease;
the holder clears the flag when it starts and, after releasing the lease, drains again if the flag was set
meanwhile, so no wake-up is lost between a holder's last claim and its release. A drain claims no new job once
its budget (`drain_budget_seconds`) is spent or the worker is shutting down; it then asks for another wake-up
(`DrainHooks.more_work`), so every job gets its own time budget rather than sharing one task's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import redis
import structlog
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from shared import db
from shared.audit import service as audit
from shared.base import utcnow
from shared.config import Settings
from shared.errors import DomainError
from shared.jobs.handlers import CARRIED, JobKinds, SelfTransacting
from shared.jobs.kinds import LEDGER_STREAM, PENDING, JobKind, JobStatus, Queue
from shared.jobs.models import Job
from shared.locks import TenantLock, begin_drain, fence_key
from shared.logs import get_logger

log = logging.getLogger(__name__)
jobs_log = get_logger("asora.jobs")

LOCK_NOT_AVAILABLE = "55P03"
MAX_ROUNDS = 3  # drains in a row while wake-ups keep arriving; then another task takes over


def interrupted(job: Job) -> dict[str, Any]:
    return {
        "code": "INTERNAL",
        "reason": "INTERRUPTED",
        "message": "the job was interrupted and is not retried automatically; start it again if it should run",
        "details": [{"attempts": job.attempts, "worker_lost": job.lost_attempts}],
    }


def attempts_exhausted(job: Job) -> dict[str, Any]:
    return {
        "code": "INTERNAL",
        "reason": "ATTEMPTS_EXHAUSTED",
        "message": "the job could not be completed on any attempt; no partial effect was written",
        "details": [{"attempts": job.attempts, "worker_lost": job.lost_attempts}],
    }


@dataclass(frozen=True)
class Stream:
    tenant_id: str
    name: str = LEDGER_STREAM

    @property
    def lock_key(self) -> int:
        return fence_key(self.tenant_id, self.name)

    @property
    def lease_name(self) -> str:
        return self.tenant_id if self.name == LEDGER_STREAM else f"{self.tenant_id}:{self.name}"

    @property
    def wake_key(self) -> str:
        return f"asora:wake:{self.lease_name}"

    def queued_key(self, queue: Queue) -> str:  # a wake-up is queued on `queue`, no drain begun (worker/publisher.py)
        return f"asora:queued:{self.lease_name}:{queue}"


def fence(session: Session, stream: Stream) -> None:
    """Scope the transaction to the stream's tenant and take its fence: one round trip, first in every job
    transaction."""
    scope = db.scope_params(session.connection(), stream.tenant_id)
    session.execute(
        select(
            func.set_config("asora.tenant_id", scope["t"], True),
            func.set_config("asora.tenant_sig", scope["s"], True),
            func.pg_advisory_xact_lock(stream.lock_key),
        )
    )


@dataclass(frozen=True)
class Claim:
    job_id: str
    kind: JobKind
    attempt: int
    # rows the handler loaded as the job was claimed (`shared.jobs.handlers.carry`), for its execution
    carried: tuple[object, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class Finished:
    """How an attempt ended: `status` is terminal, or QUEUED when the job will be tried again."""

    job_id: str
    kind: JobKind
    status: JobStatus
    error: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    runtime: float = 0.0


class DrainHooks:
    """What a drain tells its caller (the Celery task reports each job to Flower through these)."""

    def started(self, claim: Claim) -> None:
        """A job was claimed and its work begins."""

    def finished(self, outcome: Finished) -> None:
        """A job's attempt ended."""

    def more_work(self, stream: Stream) -> None:
        """The drain stopped with jobs left (budget spent, shutting down): wake the stream again."""


@dataclass
class DrainReport:
    executed: int = 0
    stopped_early: bool = False
    outcomes: list[Finished] = field(default_factory=list)


class Fenced(Exception):
    """The job was re-claimed or finished by someone else; this attempt must not commit."""


class _Wait:
    """The stream's next job is being executed elsewhere, or may not be claimed before a back-off ends."""


WAIT = _Wait()
Next = Claim | _Wait | None


def fail_job(
    session: Session, kinds: JobKinds, job: Job, error: dict[str, Any], exc: DomainError | None = None
) -> None:
    """Record a failure; the job keeps the first details, the domain row (e.g. the run) all of them."""
    job.status = JobStatus.FAILED
    job.error = {**error, "details": error.get("details", [])[:MAX_ERROR_DETAILS]}
    job.finished_at = utcnow()
    kinds.handler_for(job.kind).status_changed(session, job, exc)
    audit.record(
        session,
        tenant_id=job.tenant_id,
        action=f"job.{job.kind}",
        outcome="failed",
        target=job.id,
        reason=error.get("reason"),
        job_id=job.id,
        actor_key_id=job.actor_key_id,
        actor_role=job.actor_role,
        details={"code": error.get("code"), "message": error.get("message")},
    )


MAX_ERROR_DETAILS = 100


def _backoff(settings: Settings, tries: int) -> timedelta:
    return timedelta(seconds=min(settings.job_retry_backoff_seconds * 2 ** max(tries - 1, 0), 300))


def _requeue(session: Session, kinds: JobKinds, job: Job, settings: Settings, *, lost: bool) -> bool:
    """Put a job whose attempt did not finish back in line, after a back-off, or fail it past its cap;
    returns whether it failed."""
    if lost:
        job.lost_attempts += 1
    if not kinds.retries(job.kind):
        fail_job(session, kinds, job, interrupted(job))
        handler = kinds.handler_for(job.kind)
        if isinstance(handler, SelfTransacting):
            handler.abandoned(session, job)
        return True
    raised = job.attempts - job.lost_attempts
    if job.lost_attempts >= settings.job_max_lost_attempts or raised >= settings.job_max_attempts:
        fail_job(session, kinds, job, attempts_exhausted(job))
        return True
    job.status, job.worker, job.published_at = JobStatus.QUEUED, None, None
    job.available_at = utcnow() + _backoff(settings, job.lost_attempts if lost else raised)
    kinds.handler_for(job.kind).status_changed(session, job)
    return False


def _claim_head(session: Session, stream: Stream, worker: str) -> Job | None:
    """The common case in one statement: the stream's oldest pending job, when it is queued and past any
    back-off, marked running. None when the head is running, backing off, or absent (`claim_next` then looks)."""
    now = utcnow()
    head = (
        select(Job.id)
        .where(Job.tenant_id == stream.tenant_id, Job.stream == stream.name, Job.status.in_(PENDING))
        .order_by(Job.seq)
        .limit(1)
        .scalar_subquery()
    )
    claim = (
        update(Job)
        .where(
            Job.id == head,
            Job.status == JobStatus.QUEUED,
            (Job.available_at.is_(None)) | (Job.available_at <= now),
        )
        .values(
            status=JobStatus.RUNNING,
            attempts=Job.attempts + 1,
            started_at=func.coalesce(Job.started_at, now),
            heartbeat_at=now,
            worker=worker,
        )
        .returning(Job)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return session.scalars(claim).one_or_none()


def _claimed(session: Session, kinds: JobKinds, job: Job) -> Claim:
    kinds.handler_for(job.kind).status_changed(session, job)
    carried: list[object] = session.info.pop(CARRIED, [])
    return Claim(job.id, job.kind, job.attempts, tuple(carried))


def claim_next(session: Session, kinds: JobKinds, stream: Stream, worker: str, settings: Settings) -> Next:
    """In a transaction that holds the stream's fence: claim the stream's oldest pending job."""
    if (claimed := _claim_head(session, stream, worker)) is not None:
        return _claimed(session, kinds, claimed)
    while True:
        job = session.scalar(
            select(Job)
            .where(Job.tenant_id == stream.tenant_id, Job.stream == stream.name, Job.status.in_(PENDING))
            .order_by(Job.seq)
            .limit(1)
        )
        if job is None:
            return None
        now = utcnow()
        if job.status == JobStatus.RUNNING:
            stale_before = now - timedelta(seconds=settings.job_stale_after_seconds)
            if job.heartbeat_at is not None and job.heartbeat_at > stale_before:
                return WAIT  # claimed by a live worker between two of its transactions
            _requeue(session, kinds, job, settings, lost=True)  # its worker died: we hold the fence, it cannot commit
            continue
        if job.available_at is not None and job.available_at > now:
            return WAIT
        job.status = JobStatus.RUNNING
        job.attempts += 1
        job.started_at = job.started_at or now
        job.heartbeat_at = now
        job.worker = worker
        return _claimed(session, kinds, job)


class _Heartbeat(threading.Thread):
    """One per drain: keeps the lease and the current claim's heartbeat fresh while a job runs."""

    def __init__(self, stream: Stream, lock: TenantLock, interval: float) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{stream.lease_name}")
        self.stream, self.lock, self.interval = stream, lock, interval
        self.claim: Claim | None = None
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            claim = self.claim
            try:
                if not self.lock.extend():
                    log.warning("lost the lease of %s; the database fence decides", self.stream.lease_name)
                if claim is None:
                    continue
                with db.unit_of_work(self.stream.tenant_id) as session:
                    session.execute(
                        update(Job)
                        .where(Job.id == claim.job_id, Job.attempts == claim.attempt)
                        .values(heartbeat_at=utcnow())
                    )
            except Exception:
                log.exception("heartbeat for %s failed", self.stream.lease_name)


@dataclass(frozen=True)
class _Attempt:
    stream: Stream
    claim: Claim

    @contextmanager
    def fenced(self) -> Iterator[tuple[Session, Job]]:
        with db.unit_of_work() as session:
            yield session, _load_claimed(session, self.stream, self.claim)


def _load_claimed(session: Session, stream: Stream, claim: Claim) -> Job:
    fence(session, stream)
    job = session.get(Job, claim.job_id, populate_existing=True)
    if job is None or job.status != JobStatus.RUNNING or job.attempts != claim.attempt:
        raise Fenced(claim.job_id)
    return job


@dataclass
class _Drain:
    stream: Stream
    worker: str
    settings: Settings
    kinds: JobKinds
    hooks: DrainHooks
    stopping: Callable[[], bool]
    started: float = field(default_factory=time.monotonic)
    stopped_early: bool = False

    def may_continue(self) -> bool:
        if self.stopping() or time.monotonic() - self.started > self.settings.drain_budget_seconds:
            self.stopped_early = True
            return False
        return True

    def first_claim(self) -> Next:
        with db.unit_of_work() as session:
            fence(session, self.stream)
            return claim_next(session, self.kinds, self.stream, self.worker, self.settings)

    def execute(self, claim: Claim) -> tuple[Finished | None, Next]:
        """Run one claimed job; returns how it ended and the next claim (made in the same transaction)."""
        began = time.monotonic()
        tenant_id = self.stream.tenant_id
        handler = self.kinds.handler_for(claim.kind)
        try:
            own = handler.run(_Attempt(self.stream, claim)) if isinstance(handler, SelfTransacting) else None
            with db.unit_of_work() as session:
                job = _load_claimed(session, self.stream, claim)
                # written at the claim, which committed under this fence; held here (the session's identity map
                # holds its rows weakly)
                carried = [session.merge(row, load=False) for row in claim.carried]  # noqa: F841
                result = own if isinstance(handler, SelfTransacting) else handler.execute(session, job)
                session.flush()
                if self.settings.debug_job_delay_seconds:
                    time.sleep(self.settings.debug_job_delay_seconds)
                job.status, job.result, job.error, job.finished_at = JobStatus.COMPLETED, result, None, utcnow()
                handler.status_changed(session, job)
                audit.record(
                    session,
                    tenant_id=tenant_id,
                    action=f"job.{job.kind}",
                    outcome="completed",
                    target=job.id,
                    job_id=job.id,
                    actor_key_id=job.actor_key_id,
                    actor_role=job.actor_role,
                    details=result,
                )
                done = Finished(claim.job_id, claim.kind, JobStatus.COMPLETED, result=result)
                following = self._next(session)
        except Fenced:
            log.warning("job %s attempt %s was superseded; rolled back", claim.job_id, claim.attempt)
            return None, None
        except DomainError as exc:
            return self._record(claim, exc, began)
        except OperationalError as exc:
            # The infrastructure failed the attempt (its connection was ended, or a lock wait timed out), not
            # the job's input: it counts as a lost attempt, like a worker that died.
            if getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
                log.warning("job %s waited too long for a lock; it will be retried", claim.job_id)
            else:
                log.exception("job %s attempt %s lost its database; rolled back", claim.job_id, claim.attempt)
            return self._record(claim, None, began, lost=True)
        except Exception:
            log.exception("job %s attempt %s crashed; rolled back", claim.job_id, claim.attempt)
            return self._record(claim, None, began)
        return replace(done, runtime=time.monotonic() - began), following

    def _next(self, session: Session) -> Next:
        if not self.may_continue():
            return None
        return claim_next(session, self.kinds, self.stream, self.worker, self.settings)

    def _record(
        self, claim: Claim, error: DomainError | None, began: float, *, lost: bool = False
    ) -> tuple[Finished | None, Next]:
        """After the work rolled back: a deterministic failure fails the job; a crash re-queues it (after a
        back-off) until its cap. Done in a fresh transaction that is itself fenced, so a superseded attempt
        records nothing; the next job is claimed in it too."""
        try:
            with db.unit_of_work() as session:
                job = _load_claimed(session, self.stream, claim)
                if error is not None:
                    fail_job(session, self.kinds, job, error.as_dict(), error)
                else:
                    _requeue(session, self.kinds, job, self.settings, lost=lost)
                done = Finished(job.id, job.kind, job.status, error=job.error, runtime=time.monotonic() - began)
                return done, self._next(session)
        except Fenced:
            log.warning("job %s attempt %s was superseded before its outcome was recorded", claim.job_id, claim.attempt)
            return None, None

    def run(self, lock: TenantLock, report: DrainReport) -> None:
        heartbeat = _Heartbeat(self.stream, lock, self.settings.heartbeat_seconds)
        heartbeat.start()
        try:
            # A drain begun after shutdown started claims nothing; the stream is woken again for another worker.
            self.stopped_early = self.stopping()
            following = None if self.stopped_early else self.first_claim()
            while isinstance(following, Claim):
                claim = heartbeat.claim = following
                began = time.monotonic()
                # Every line written while the job runs (ours, a handler's, Celery's) names the job.
                with structlog.contextvars.bound_contextvars(
                    job_id=claim.job_id,
                    kind=str(claim.kind),
                    tenant_id=self.stream.tenant_id,
                    stream=self.stream.name,
                    attempt=claim.attempt,
                ):
                    self.hooks.started(claim)
                    outcome, following = self.execute(claim)
                    heartbeat.claim = following if isinstance(following, Claim) else None
                    if outcome is not None:
                        report.executed += 1
                        report.outcomes.append(outcome)
                        self.hooks.finished(outcome)
                    _log_outcome(outcome, time.monotonic() - began)
        finally:
            heartbeat.stopped.set()
            heartbeat.join()


def _log_outcome(outcome: Finished | None, elapsed: float) -> None:
    """The job's one line: how the attempt ended (the job's code and reason when it failed, never its payload)."""
    if outcome is None:
        jobs_log.warning("job.finished", outcome="superseded", duration_ms=round(elapsed * 1000, 3))
        return
    error = outcome.error or {}
    name = {JobStatus.COMPLETED: "completed", JobStatus.FAILED: "failed"}.get(outcome.status, "retrying")
    jobs_log.log(
        logging.INFO if outcome.status == JobStatus.COMPLETED else logging.WARNING,
        "job.finished",
        outcome=name,
        status=str(outcome.status),
        code=error.get("code"),
        reason=error.get("reason"),
        duration_ms=round(elapsed * 1000, 3),
    )


def drain(
    stream: Stream,
    *,
    worker: str,
    redis_client: redis.Redis,
    settings: Settings,
    kinds: JobKinds,
    hooks: DrainHooks | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> DrainReport:
    """Run the stream's pending jobs in order. Safe to call any number of times from any number of workers:
    a call only says "this stream has work"."""
    hooks = hooks or DrainHooks()
    report = DrainReport()
    begin_drain(
        redis_client, stream.wake_key, [stream.queued_key(q) for q in Queue], settings.tenant_lock_lease_seconds
    )
    for _ in range(MAX_ROUNDS):
        lock = TenantLock(redis_client, stream.lease_name, settings.tenant_lock_lease_seconds)
        if not lock.acquire():
            return report  # the holder sees the wake flag once it releases
        run = _Drain(stream, worker, settings, kinds, hooks, stopping)
        try:
            redis_client.delete(stream.wake_key)
            run.run(lock, report)
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
            # Another transaction holds the fence past the lock timeout (a frozen worker, until PostgreSQL ends
            # its idle transaction): leave, so this worker serves other streams; the relay wakes this one again.
            log.warning("the fence of %s is held elsewhere; leaving it for later", stream.lease_name)
            return report
        finally:
            lock.release()
        if run.stopped_early:
            report.stopped_early = True
            hooks.more_work(stream)
            return report
        if not redis_client.getdel(stream.wake_key):
            return report
    hooks.more_work(stream)
    return report


def drain_tenant(tenant_id: str, *, worker: str, redis_client: redis.Redis, settings: Settings, kinds: JobKinds) -> int:
    """Drain the tenant's ledger stream; returns how many jobs were executed."""
    return drain(Stream(tenant_id), worker=worker, redis_client=redis_client, settings=settings, kinds=kinds).executed


def job_state(tenant_id: str, job_id: str) -> tuple[JobStatus, dict[str, Any] | None, dict[str, Any] | None] | None:
    """A job's status, error and result (None if there is no such job)."""
    with db.unit_of_work(tenant_id) as session:
        row = session.execute(select(Job.status, Job.error, Job.result).where(Job.id == job_id)).first()
    return None if row is None else (row[0], row[1], row[2])


def reap_stale_jobs(
    settings: Settings, kinds: JobKinds, stale_after_seconds: int | None = None
) -> list[dict[str, Any]]:
    """Re-queue (after a back-off) or fail, past the cap, running jobs whose worker stopped heartbeating. A
    stream whose fence is held has a live transaction: left alone, unless its holder is frozen mid-statement
    waiting on its client (migration 0014), which no timeout of PostgreSQL's ends; that backend is terminated and
    the job reaped on the next look."""
    stale = stale_after_seconds if stale_after_seconds is not None else settings.job_stale_after_seconds
    cutoff = utcnow() - timedelta(seconds=stale)
    with db.unit_of_work(db.SYSTEM_SCOPE) as session:
        candidates = session.execute(
            text("SELECT id, tenant_id, stream FROM asora_sys_stale_jobs(:cutoff)"), {"cutoff": cutoff}
        ).all()
    outcomes: list[dict[str, Any]] = []
    for job_id, tenant_id, stream_name in candidates:
        stream = Stream(tenant_id, stream_name)
        with db.unit_of_work(tenant_id) as session:
            if not session.scalar(select(func.pg_try_advisory_xact_lock(stream.lock_key))):
                with db.unit_of_work(db.SYSTEM_SCOPE) as system:
                    ended = system.scalar(text("SELECT asora_sys_end_frozen_fence_holder(:k)"), {"k": stream.lock_key})
                if ended:
                    log.warning("ended the frozen holder of %s's fence (job %s)", stream.lease_name, job_id)
                    outcomes.append({"job_id": job_id, "tenant_id": tenant_id, "action": "holder_ended"})
                continue
            job = session.get(Job, job_id, populate_existing=True)
            if job is None or job.status != JobStatus.RUNNING or job.heartbeat_at is None or job.heartbeat_at >= cutoff:
                continue
            action = "failed" if _requeue(session, kinds, job, settings, lost=True) else "requeued"
            if action == "requeued":
                audit.record(
                    session,
                    tenant_id=tenant_id,
                    action="job.reaped",
                    outcome="requeued",
                    target=job.id,
                    job_id=job.id,
                    details={"attempts": job.attempts, "worker_lost": job.lost_attempts},
                )
            outcomes.append({"job_id": job.id, "tenant_id": tenant_id, "action": action})
    return outcomes


@dataclass(frozen=True)
class StreamHead:
    id: str
    tenant_id: str
    kind: str
    stream: str


def wake_streams(session: Session, republish_after_seconds: int, limit: int = 500) -> list[StreamHead]:
    """The oldest queued job of each stream that needs a wake-up: never scheduled (no process published it), last
    scheduled long ago (a lost message, a Redis restart, a wake-up dropped while the lease was held), or whose
    back-off has just ended. One per stream: a wake-up is for the stream, whichever job it names. Every queued
    job of those streams counts as scheduled now (the next look is in `relay_republish_after_seconds`); a
    relay that fails to publish rolls that back. Two relays may both wake one stream, which is harmless.
    Cross-tenant: `session` is the system login's (`unit_of_work(SYSTEM_SCOPE)`), through
    `asora_sys_wake_streams` (migration 0013)."""
    now = utcnow()
    cutoff = now - timedelta(seconds=republish_after_seconds)
    rows = session.execute(
        text("SELECT id, tenant_id, kind, stream FROM asora_sys_wake_streams(:now, :cutoff, :limit)"),
        {"now": now, "cutoff": cutoff, "limit": limit},
    ).all()
    return [StreamHead(*row) for row in rows]
