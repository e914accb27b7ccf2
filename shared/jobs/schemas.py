"""Jobs as API clients see them: kind and status from the one table of names (`shared.jobs.kinds`)."""

from __future__ import annotations

from pydantic import Field

from shared.jobs.kinds import JobKind, JobStatus
from shared.schemas import ErrorRecord, Schema, UtcDatetime


class JobOut(Schema):
    job_id: str = Field(validation_alias="id")
    kind: JobKind
    status: JobStatus
    tenant_id: str
    seq: int
    attempts: int
    error: ErrorRecord | None
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
