"""Ledger events as API clients see them: decimals as strings, times in UTC."""

from __future__ import annotations

from shared.ledger.models import EventType
from shared.schemas import DecimalStr, Schema, UtcDatetime


class LedgerEventOut(Schema):
    seq: int
    event_type: EventType
    sku: str
    lot_id: str
    bin_id: str | None
    quantity: DecimalStr
    unit_cost: DecimalStr
    amount: DecimalStr
    occurred_at: UtcDatetime
    recorded_at: UtcDatetime
    job_id: str
    run_id: str | None
    reference: str | None
    reverses_seq: int | None
    prev_hash: str
    hash: str
