"""Jobs (the per-tenant ordered work stream and transactional outbox) and idempotency records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, SmallInteger, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.base import Base, CreatedAt, EnumText
from shared.jobs.kinds import JobKind, JobStatus


class Job(Base):
    """One accepted unit of work. `seq` orders a tenant's jobs. The row is its own outbox entry:
    `published_at` is when its wake-up was last sent or scheduled (NULL: never; the relay sends it)."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "seq"),
        Index("ix_jobs_pending", "tenant_id", "stream", "seq", postgresql_where="status IN ('queued', 'running')"),
        Index("ix_jobs_queued", "created_at", postgresql_where="status = 'queued'"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[JobKind] = mapped_column(EnumText(JobKind, 32))
    status: Mapped[JobStatus] = mapped_column(EnumText(JobStatus, 16), server_default="queued")
    # The ordered stream the job runs in: LEDGER for everything that touches the tenant's books,
    # `integration:<id>` for an integration's dispatches (shared/jobs/kinds.py).
    stream: Mapped[str] = mapped_column(String(80), server_default="ledger")
    attempts: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    # Attempts whose worker died without recording an outcome; counted apart from attempts that raised.
    lost_attempts: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    # A re-queued job is not claimed again before this (back-off after a lost worker).
    available_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    actor_key_id: Mapped[str | None] = mapped_column(String(40))
    actor_role: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[CreatedAt]
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    worker: Mapped[str | None] = mapped_column(String(200))


class JobBlob(Base):
    """Large job inputs (uploaded CSV files), kept beside the job rather than inside its payload."""

    __tablename__ = "job_blobs"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", deferrable=True, initially="DEFERRED"), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63), index=True)
    content: Mapped[bytes]
    size: Mapped[int] = mapped_column(BigInteger)


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[CreatedAt]
