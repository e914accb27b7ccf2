"""The tenant's audit trail, oldest first, paged by event id."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import LimitQuery, SeqCursor, SessionDep, tenant_of
from api.intake import From, Reader, SafeQuery, To, as_utc
from shared.audit import service as audit
from shared.audit.schemas import AuditEventOut
from shared.schemas import Page

router = APIRouter(tags=["audit"])


@router.get("/audit", response_model=Page[AuditEventOut])
def list_audit(
    session: SessionDep,
    principal: Reader,
    action: SafeQuery = None,
    start: From = None,
    end: To = None,
    limit: LimitQuery = 100,
    cursor: SeqCursor = None,
) -> Page[AuditEventOut]:
    rows = audit.list_events(
        session,
        tenant_of(principal),
        action=action,
        start=as_utc(start),
        end=as_utc(end),
        after_id=cursor,
        limit=limit + 1,
    )
    page = rows[:limit]
    return Page(
        items=[AuditEventOut.model_validate(r) for r in page],
        next_cursor=str(page[-1].id) if len(rows) > limit else None,
    )
