"""Accepting jobs (numbered per tenant, recorded as outbox rows) and idempotent intake."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.auth import Principal
from shared.base import new_id, utcnow
from shared.errors import NotFound, ValidationFailed
from shared.jobs import outbox
from shared.jobs.kinds import LEDGER_STREAM, JobKind, JobStatus
from shared.jobs.models import IdempotencyKey, Job, JobBlob
from shared.pagination import page
from shared.tenants.models import TenantCounter


def accept_job(
    session: Session,
    *,
    tenant_id: str,
    kind: JobKind,
    payload: dict[str, Any],
    actor: Principal | None,
    job_id: str | None = None,
    stream: str = LEDGER_STREAM,
) -> Job:
    """Number the job with the tenant's next gapless `seq` and record it; its wake-up is published when the
    session commits (`shared/jobs/outbox.py`)."""
    seq = session.execute(
        update(TenantCounter)
        .where(TenantCounter.tenant_id == tenant_id)
        .values(job_seq=TenantCounter.job_seq + 1)
        .returning(TenantCounter.job_seq)
    ).scalar_one()
    job = Job(
        id=job_id or new_id("job"),
        tenant_id=tenant_id,
        seq=seq,
        kind=kind,
        stream=stream,
        status=JobStatus.QUEUED,
        attempts=0,
        payload=payload,
        actor_key_id=actor.key_id if actor else None,
        actor_role=actor.role if actor else None,
        published_at=utcnow() if outbox.publishing() else None,
    )
    session.add(job)
    session.flush()
    outbox.publish_after_commit(session, outbox.Wakeup(job.id, tenant_id, kind, stream))
    return job


def attach_blob(session: Session, job: Job, name: str, content: bytes) -> None:
    session.add(JobBlob(job_id=job.id, name=name, tenant_id=job.tenant_id, content=content, size=len(content)))


def read_blob(session: Session, job_id: str, name: str) -> bytes | None:
    return session.scalar(select(JobBlob.content).where(JobBlob.job_id == job_id, JobBlob.name == name))


def get_job(session: Session, tenant_id: str, job_id: str) -> Job:
    job = session.scalar(select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id))
    if job is None:
        raise NotFound(f"job '{job_id}' not found")
    return job


def list_jobs(
    session: Session,
    tenant_id: str,
    *,
    kind: JobKind | None,
    status: JobStatus | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Job], str | None]:
    query = select(Job).where(Job.tenant_id == tenant_id)
    if kind:
        query = query.where(Job.kind == kind)
    if status:
        query = query.where(Job.status == status)
    return page(session, query, Job.seq, limit=limit, cursor=cursor, descending=True)


# --- idempotency -----------------------------------------------------------------------------------------


def request_fingerprint(*parts: Any) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True, default=str).encode())
        digest.update(b"\x00")
    return digest.hexdigest()


def replay(session: Session, tenant_id: str, key: str, fingerprint: str) -> tuple[int, dict[str, Any]] | None:
    """The stored answer for a repeated key with the same request, or None when the key is new.
    A concurrent request with the same key waits on the row lock and then sees the first answer."""
    row = session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.tenant_id == tenant_id, IdempotencyKey.key == key).with_for_update()
    )
    if row is None:
        return None
    if row.request_hash != fingerprint:
        raise ValidationFailed(
            "this Idempotency-Key was already used with a different request",
            reason="IDEMPOTENCY_KEY_REUSED",
            details=[{"field": "Idempotency-Key", "message": "use a new key for a different request"}],
        )
    return row.status_code, row.response


def claim_key(session: Session, tenant_id: str, key: str, fingerprint: str) -> tuple[int, dict[str, Any]] | None:
    """Insert the key (blocking a concurrent twin until we commit) or return the earlier answer."""
    inserted = session.execute(
        insert(IdempotencyKey)
        .values(tenant_id=tenant_id, key=key, request_hash=fingerprint, status_code=0, response={})
        .on_conflict_do_nothing()
        .returning(IdempotencyKey.key)
    ).first()
    if inserted is not None:
        return None
    return replay(session, tenant_id, key, fingerprint)


def store_answer(session: Session, tenant_id: str, key: str, status_code: int, response: dict[str, Any]) -> None:
    session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.tenant_id == tenant_id, IdempotencyKey.key == key)
        .values(status_code=status_code, response=response)
    )


def purge_idempotency_keys(session: Session, retention_days: int) -> int:
    cutoff = utcnow() - timedelta(days=retention_days)
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))
    return int(result.rowcount)  # type: ignore[attr-defined]
