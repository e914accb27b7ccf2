"""What the audit trail looks like to API clients: ids as strings, times in UTC."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator

from shared.schemas import Schema, UtcDatetime


class AuditEventOut(Schema):
    id: Annotated[str, BeforeValidator(str)]
    tenant_id: str | None
    actor_key_id: str | None
    actor_role: str | None
    action: str
    target: str | None
    outcome: str
    reason: str | None
    request_id: str | None
    job_id: str | None
    details: dict[str, Any] | None
    created_at: UtcDatetime
