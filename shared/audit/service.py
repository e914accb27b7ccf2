"""Writing and reading audit events. Details are redacted before they are stored."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from shared.audit.models import AuditEvent
from shared.auth import Principal
from shared.base import table_of
from shared.pagination import page

SECRET_MARKERS = ("secret", "password", "token", "key", "authorization", "signature")
REDACTED = "[redacted]"


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (REDACTED if any(m in k.lower() for m in SECRET_MARKERS) and k not in _SAFE_KEYS else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


# Ids that merely contain a marker word are not secrets.
_SAFE_KEYS = frozenset({"key_id", "idempotency_key_reused", "api_key_id"})


# The table's INSERT, not the ORM's, built once and sent on the session's connection: audit rows are written on
# every hot path, and building the statement per row (and the ORM session's execute) cost more than sending it.
_INSERT = insert(table_of(AuditEvent))


def record(
    session: Session,
    *,
    tenant_id: str | None,
    action: str,
    outcome: str,
    actor: Principal | None = None,
    actor_key_id: str | None = None,
    actor_role: str | None = None,
    target: str | None = None,
    reason: str | None = None,
    request_id: str | None = None,
    job_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    session.connection().execute(
        _INSERT,
        {
            "tenant_id": tenant_id,
            "actor_key_id": actor.key_id if actor else actor_key_id,
            "actor_role": actor.role if actor else actor_role,
            "action": action,
            "target": target,
            "outcome": outcome,
            "reason": reason,
            "request_id": request_id,
            "job_id": job_id,
            "details": redact(details) if details else None,
        },
    )


def list_events(
    session: Session,
    tenant_id: str,
    *,
    action: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> tuple[list[AuditEvent], str | None]:
    """The tenant's audit events, oldest first."""
    query = select(AuditEvent).where(AuditEvent.tenant_id == tenant_id)
    if action:
        query = query.where(AuditEvent.action == action)
    if start:
        query = query.where(AuditEvent.created_at >= start)
    if end:
        query = query.where(AuditEvent.created_at < end)
    return page(session, query, AuditEvent.id, limit=limit, cursor=cursor)
