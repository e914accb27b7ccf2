"""Exports: a report rendered to CSV by a job, kept for good. The database rejects DELETE and TRUNCATE on
this table, and any UPDATE of a finished (completed or failed) export or of an export's identity."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.base import Base, CreatedAt, EnumText


class ExportStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


FINISHED = (ExportStatus.COMPLETED, ExportStatus.FAILED)


class Export(Base):
    __tablename__ = "exports"
    __table_args__ = (Index("ix_exports_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", deferrable=True, initially="DEFERRED"))
    report: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSONB)
    params_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[ExportStatus] = mapped_column(EnumText(ExportStatus, 16), server_default="queued")
    filename: Mapped[str | None] = mapped_column(String(255))
    sha256: Mapped[str | None] = mapped_column(String(64))
    row_count: Mapped[int | None] = mapped_column(BigInteger)
    size: Mapped[int | None] = mapped_column(Integer)
    ledger_seq: Mapped[int | None] = mapped_column(BigInteger)
    content: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[CreatedAt]
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
