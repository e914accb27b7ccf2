"""Writing and reading audit events. Details are redacted before they are stored."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Required, TypedDict, Unpack

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared import db
from shared.audit.models import AuditEvent
from shared.auth import Principal
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


# Sent as driver SQL on the session's connection, not through the ORM or a compiled Core INSERT: audit rows are
# written on every hot path, and an intake can write its row inside its job's numbering statement (`insert`).
_INSERT = """INSERT INTO audit_events (tenant_id, actor_key_id, actor_role, action, target, outcome, reason,
                                       request_id, job_id, details)
VALUES (%({p}tenant_id)s, %({p}actor_key_id)s, %({p}actor_role)s, %({p}action)s, %({p}target)s, %({p}outcome)s,
        %({p}reason)s, %({p}request_id)s, %({p}job_id)s, %({p}details)s::jsonb)"""


class AuditFields(TypedDict, total=False):
    """What an audit event says: `tenant_id`, `action` and `outcome` always; `actor` (a principal) or its key id
    and role; the rest when known."""

    tenant_id: Required[str | None]
    action: Required[str]
    outcome: Required[str]
    actor: Principal | None
    actor_key_id: str | None
    actor_role: str | None
    target: str | None
    reason: str | None
    request_id: str | None
    job_id: str | None
    details: dict[str, Any] | None


def insert(**event: Unpack[AuditFields]) -> db.Insert:
    """An audit event as an INSERT, its details redacted: written by `record`, or handed to `jobs.accept_job`."""
    actor, details = event.get("actor"), event.get("details")
    return db.Insert(
        _INSERT,
        {
            "tenant_id": event["tenant_id"],
            "actor_key_id": actor.key_id if actor else event.get("actor_key_id"),
            "actor_role": actor.role if actor else event.get("actor_role"),
            "action": event["action"],
            "target": event.get("target"),
            "outcome": event["outcome"],
            "reason": event.get("reason"),
            "request_id": event.get("request_id"),
            "job_id": event.get("job_id"),
            "details": db.json_text(redact(details)) if details else None,
        },
    )


def record(session: Session, **event: Unpack[AuditFields]) -> None:
    """Write an audit event now."""
    db.execute_insert(session, insert(**event))


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
