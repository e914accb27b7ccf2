"""The tenant's ledger as written: events in `seq` order, decimals as strings, paged by seq."""

from __future__ import annotations

from api.deps import CursorQuery, From, LimitQuery, Reader, SafeQuery, TenantSession, To, api_router, as_utc, tenant_of
from shared.ledger import queries as ledger
from shared.ledger.models import EventType
from shared.ledger.schemas import LedgerEventOut
from shared.schemas import Page

router = api_router(tags=["ledger"])


@router.get("/ledger", response_model=Page[LedgerEventOut], operation_id="ledger_list")
def list_ledger(
    principal: Reader,
    session: TenantSession,
    sku: SafeQuery = None,
    event_type: EventType | None = None,
    job_id: SafeQuery = None,
    start: From = None,
    end: To = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[LedgerEventOut]:
    rows, next_cursor = ledger.list_events(
        session,
        tenant_of(principal),
        sku=sku,
        event_type=event_type,
        job_id=job_id,
        start=as_utc(start),
        end=as_utc(end),
        cursor=cursor,
        limit=limit,
    )
    return Page(items=[LedgerEventOut.model_validate(r) for r in rows], next_cursor=next_cursor)
