"""The tenant's audit trail, oldest first, paged by event id."""

from __future__ import annotations

from api.deps import CursorQuery, From, LimitQuery, Reader, SafeQuery, TenantSession, To, api_router, as_utc, tenant_of
from shared.audit import service as audit
from shared.audit.schemas import AuditEventOut
from shared.schemas import Page

router = api_router(tags=["audit"])


@router.get("/audit", response_model=Page[AuditEventOut], operation_id="audit_list")
def list_audit(
    principal: Reader,
    session: TenantSession,
    action: SafeQuery = None,
    start: From = None,
    end: To = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[AuditEventOut]:
    rows, next_cursor = audit.list_events(
        session, tenant_of(principal), action=action, start=as_utc(start), end=as_utc(end), cursor=cursor, limit=limit
    )
    return Page(items=[AuditEventOut.model_validate(r) for r in rows], next_cursor=next_cursor)
