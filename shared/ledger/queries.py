"""Reading the ledger as it was written: a tenant's events in `seq` order, filtered and paged."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, literal, select, true
from sqlalchemy.orm import Session, aliased, with_expression
from sqlalchemy.sql.elements import ColumnElement

from shared.ledger.canonical import GENESIS_HASH
from shared.ledger.models import EventType, HexDigest, LedgerEvent
from shared.pagination import page


def previous_hash() -> ColumnElement[str]:
    """The hash an event was chained from: its predecessor's (one primary-key lookup), or the genesis hash."""
    previous = aliased(LedgerEvent)
    stored = (
        select(previous.hash)
        .where(previous.tenant_id == LedgerEvent.tenant_id, previous.seq == LedgerEvent.seq - 1)
        .scalar_subquery()
    )
    return func.coalesce(stored, literal(GENESIS_HASH, HexDigest), type_=HexDigest)


def seq_between(first: int | None, last: int | None) -> ColumnElement[bool]:
    """Events with seq in [first, last]. A run's events lie in its seq range (recorded when it wrote them), and
    a condition on it lets PostgreSQL read them along the primary key; no condition for a run that wrote none."""
    if first is None or last is None:
        return true()
    return LedgerEvent.seq.between(first, last)


def list_events(
    session: Session,
    tenant_id: str,
    *,
    sku: str | None = None,
    event_type: EventType | None = None,
    job_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> tuple[list[LedgerEvent], str | None]:
    """A page of events (`occurred_at` in [start, end)) in seq order, and the cursor of the next page."""
    query = (
        select(LedgerEvent)
        .where(LedgerEvent.tenant_id == tenant_id)
        .options(with_expression(LedgerEvent.prev_hash, previous_hash()))
    )
    if sku is not None:
        query = query.where(LedgerEvent.sku == sku)
    if event_type is not None:
        query = query.where(LedgerEvent.event_type == event_type)
    if job_id is not None:
        query = query.where(LedgerEvent.job_id == job_id)
    if start is not None:
        query = query.where(LedgerEvent.occurred_at >= start)
    if end is not None:
        query = query.where(LedgerEvent.occurred_at < end)
    return page(session, query, LedgerEvent.seq, limit=limit, cursor=cursor)
