from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.schemas import Schema, UtcDatetime


class JobOut(Schema):
    job_id: str = Field(validation_alias="id")
    kind: str
    status: str
    tenant_id: str
    seq: int
    attempts: int
    error: dict[str, Any] | None
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
