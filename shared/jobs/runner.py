"""Executing a tenant's jobs one at a time, in `seq` order, exactly once.

The Redis lease keeps a second worker from even trying; PostgreSQL is the fence. Every claim and every
execution transaction starts with `pg_advisory_xact_lock(tenant)`, and the execution commits only if the
job is still `running` under the attempt number it claimed. A worker that lost its lease while paused
therefore either finishes before the next holder can claim (its commit is then seen, and the job is not
run again), or finds its attempt superseded and rolls back. A worker killed mid-job loses its connection,
so its transaction rolls back whole and its advisory lock is released; the reaper or the next drain
re-queues the job.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from shared import db
from shared.audit import service as audit
from shared.base import utcnow
from shared.config import Settings
from shared.errors import DomainError
from shared.jobs.handlers import handler_for
from shared.jobs.kinds import PENDING, JobStatus
from shared.jobs.models import Job
from shared.locks import TenantLock

log = logging.getLogger(__name__)

FAILED_INTERNAL = {
    "code": "INTERNAL",
    "reason": "ATTEMPTS_EXHAUSTED",
    "message": "the job failed on every attempt; no partial effect was written",
    "details": [],
}


def tenant_lock_key(tenant_id: str) -> int:
    return zlib.crc32(f"asora:tenant:{tenant_id}".encode())


def _fence(session: Session, tenant_id: str) -> None:
    session.execute(select(func.pg_advisory_xact_lock(tenant_lock_key(tenant_id))))


@dataclass(frozen=True)
class Claim:
    job_id: str
    tenant_id: str
    kind: str
    attempt: int


class Fenced(Exception):
    """The job was re-claimed or finished by someone else; this attempt must not commit."""


BUSY = "busy"


MAX_ERROR_DETAILS = 100


def fail_job(session: Session, job: Job, error: dict[str, Any], exc: DomainError | None = None) -> None:
    """Record a failure; the job keeps the first details, the domain row (e.g. the run) all of them."""
    job.status = JobStatus.FAILED
    job.error = {**error, "details": error.get("details", [])[:MAX_ERROR_DETAILS]}
    job.finished_at = utcnow()
    handler_for(job.kind).status_changed(session, job, exc)
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


def _claim_next(tenant_id: str, worker: str, settings: Settings) -> Claim | str | None:
    while True:
        with db.unit_of_work(tenant_id) as session:
            _fence(session, tenant_id)
            job = session.scalar(
                select(Job).where(Job.tenant_id == tenant_id, Job.status.in_(PENDING)).order_by(Job.seq).limit(1)
            )
            if job is None:
                return None
            stale_before = utcnow() - timedelta(seconds=settings.job_stale_after_seconds)
            if job.status == JobStatus.RUNNING and job.heartbeat_at is not None and job.heartbeat_at > stale_before:
                return BUSY
            if job.attempts >= settings.job_max_attempts:
                fail_job(session, job, FAILED_INTERNAL)
                continue
            now = utcnow()
            job.status = JobStatus.RUNNING
            job.attempts += 1
            job.started_at = job.started_at or now
            job.heartbeat_at = now
            job.worker = worker
            handler_for(job.kind).status_changed(session, job)
            return Claim(job.id, tenant_id, job.kind, job.attempts)


class _Heartbeat(threading.Thread):
    def __init__(self, claim: Claim, lock: TenantLock, interval: float) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{claim.job_id}")
        self.claim, self.lock, self.interval = claim, lock, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                if not self.lock.extend():
                    log.warning("lost the tenant lease for %s; the database fence decides", self.claim.tenant_id)
                with db.unit_of_work(self.claim.tenant_id) as session:
                    session.execute(
                        update(Job)
                        .where(Job.id == self.claim.job_id, Job.attempts == self.claim.attempt)
                        .values(heartbeat_at=utcnow())
                    )
            except Exception:
                log.exception("heartbeat for job %s failed", self.claim.job_id)


def _load_claimed(session: Session, claim: Claim) -> Job:
    _fence(session, claim.tenant_id)
    job = session.get(Job, claim.job_id, populate_existing=True)
    if job is None or job.status != JobStatus.RUNNING or job.attempts != claim.attempt:
        raise Fenced(claim.job_id)
    return job


def _execute(claim: Claim, lock: TenantLock, settings: Settings) -> None:
    heartbeat = _Heartbeat(claim, lock, settings.heartbeat_seconds)
    heartbeat.start()
    try:
        with db.unit_of_work(claim.tenant_id) as session:
            job = _load_claimed(session, claim)
            result = handler_for(job.kind).execute(session, job)
            session.flush()
            if settings.debug_job_delay_seconds:
                time.sleep(settings.debug_job_delay_seconds)
            job.status = JobStatus.COMPLETED
            job.result = result
            job.finished_at = utcnow()
            job.error = None
            handler_for(job.kind).status_changed(session, job)
            audit.record(
                session,
                tenant_id=job.tenant_id,
                action=f"job.{job.kind}",
                outcome="completed",
                target=job.id,
                job_id=job.id,
                actor_key_id=job.actor_key_id,
                actor_role=job.actor_role,
                details=result,
            )
    except Fenced:
        log.warning("job %s attempt %s was superseded; rolled back", claim.job_id, claim.attempt)
    except DomainError as exc:
        _record_outcome(claim, settings, exc)
    except Exception:
        log.exception("job %s attempt %s crashed; rolled back", claim.job_id, claim.attempt)
        _record_outcome(claim, settings, None)
    finally:
        heartbeat.stopped.set()
        heartbeat.join()


def _record_outcome(claim: Claim, settings: Settings, error: DomainError | None) -> None:
    """After the work rolled back: a deterministic failure fails the job; a crash re-queues it until the
    attempt cap. Done in a fresh transaction that is itself fenced, so a superseded attempt records nothing."""
    try:
        with db.unit_of_work(claim.tenant_id) as session:
            job = _load_claimed(session, claim)
            if error is not None:
                fail_job(session, job, error.as_dict(), error)
            elif job.attempts >= settings.job_max_attempts:
                fail_job(session, job, FAILED_INTERNAL)
            else:
                job.status, job.worker = JobStatus.QUEUED, None
                handler_for(job.kind).status_changed(session, job)
    except Fenced:
        log.warning("job %s attempt %s was superseded before its outcome was recorded", claim.job_id, claim.attempt)


def _has_pending(tenant_id: str) -> bool:
    with db.unit_of_work(tenant_id) as session:
        return (
            session.scalar(select(Job.id).where(Job.tenant_id == tenant_id, Job.status == JobStatus.QUEUED).limit(1))
            is not None
        )


def drain_tenant(tenant_id: str, *, worker: str, redis_client: redis.Redis, settings: Settings) -> int:
    """Run the tenant's pending jobs in order; returns how many were executed. Safe to call any number of
    times from any number of workers: a message only says "this tenant has work"."""
    executed = 0
    for _ in range(3):
        lock = TenantLock(redis_client, tenant_id, settings.tenant_lock_lease_seconds)
        if not lock.acquire():
            return executed
        try:
            while True:
                claim = _claim_next(tenant_id, worker, settings)
                if claim is None or claim == BUSY:
                    break
                assert isinstance(claim, Claim)
                _execute(claim, lock, settings)
                executed += 1
        finally:
            lock.release()
        # A job committed while we held the lease had its wake-up dropped by a worker that found the lease
        # taken; looking once more after releasing closes that window.
        if not _has_pending(tenant_id):
            break
    return executed


def reap_stale_jobs(settings: Settings, stale_after_seconds: int | None = None) -> list[dict[str, Any]]:
    """Re-queue (or fail, past the attempt cap) running jobs whose worker stopped heartbeating. A tenant
    whose fence is held has a live transaction and is left alone."""
    stale = stale_after_seconds if stale_after_seconds is not None else settings.job_stale_after_seconds
    cutoff = utcnow() - timedelta(seconds=stale)
    with db.unit_of_work(db.SYSTEM_SCOPE) as session:
        candidates = session.execute(
            select(Job.id, Job.tenant_id).where(Job.status == JobStatus.RUNNING, Job.heartbeat_at < cutoff)
        ).all()
    outcomes: list[dict[str, Any]] = []
    for job_id, tenant_id in candidates:
        with db.unit_of_work(tenant_id) as session:
            if not session.scalar(select(func.pg_try_advisory_xact_lock(tenant_lock_key(tenant_id)))):
                continue
            job = session.get(Job, job_id, populate_existing=True)
            if job is None or job.status != JobStatus.RUNNING or job.heartbeat_at is None or job.heartbeat_at >= cutoff:
                continue
            if job.attempts >= settings.job_max_attempts:
                fail_job(session, job, FAILED_INTERNAL)
                outcomes.append({"job_id": job.id, "tenant_id": tenant_id, "action": "failed"})
            else:
                job.status, job.worker, job.published_at = JobStatus.QUEUED, None, None
                handler_for(job.kind).status_changed(session, job)
                audit.record(
                    session,
                    tenant_id=tenant_id,
                    action="job.reaped",
                    outcome="requeued",
                    target=job.id,
                    job_id=job.id,
                    details={"attempts": job.attempts},
                )
                outcomes.append({"job_id": job.id, "tenant_id": tenant_id, "action": "requeued"})
    return outcomes


def jobs_to_publish(session: Session, republish_after_seconds: int, limit: int = 500) -> list[Job]:
    """Outbox rows never handed to the broker, plus queued jobs whose message may have been lost (a Redis
    restart, or a wake-up dropped while the lease was held). Re-publishing is harmless: messages only
    wake a tenant's drain."""
    cutoff = utcnow() - timedelta(seconds=republish_after_seconds)
    return list(
        session.scalars(
            select(Job)
            .where(Job.status == JobStatus.QUEUED, (Job.published_at.is_(None)) | (Job.published_at < cutoff))
            .order_by(Job.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
