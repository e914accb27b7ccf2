"""The tenant's ledger as written: events in `seq` order, decimals as strings, paged by seq."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import LimitQuery, SeqCursor, SessionDep, tenant_of
from api.intake import From, Reader, SafeQuery, To, as_utc
from shared.ledger import queries as ledger
from shared.ledger.schemas import LedgerEventOut
from shared.schemas import Page

router = APIRouter(tags=["ledger"])


@router.get("/ledger", response_model=Page[LedgerEventOut])
def list_ledger(
    session: SessionDep,
    principal: Reader,
    sku: SafeQuery = None,
    event_type: SafeQuery = None,
    job_id: SafeQuery = None,
    start: From = None,
    end: To = None,
    limit: LimitQuery = 100,
    cursor: SeqCursor = None,
) -> Page[LedgerEventOut]:
    rows, last_seq = ledger.list_events(
        session,
        tenant_of(principal),
        sku=sku,
        event_type=event_type,
        job_id=job_id,
        start=as_utc(start),
        end=as_utc(end),
        after_seq=cursor,
        limit=limit,
    )
    return Page(
        items=[LedgerEventOut.model_validate(r) for r in rows],
        next_cursor=str(last_seq) if last_seq is not None else None,
    )
