"""Appending to the ledger: gapless per-tenant `seq`, a SHA-256 hash chain, and COPY for volume.

Every writer goes through `append_events`; nothing else inserts ledger rows. The canonical form hashed for
an event is fixed here and re-derived by verification, so the chain proves both order and content.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.copyio import copy_rows
from shared.runs.decimals import AMOUNT_SCALE, COST_SCALE, QTY_SCALE, format_scaled
from shared.tenants.models import LedgerHead

GENESIS_HASH = "0" * 64
EVENT_TYPES = ("RECEIPT", "ISSUE", "ADJUSTMENT", "REVERSAL")
COLUMNS = (
    "tenant_id",
    "seq",
    "event_type",
    "sku",
    "lot_id",
    "bin_id",
    "quantity",
    "unit_cost",
    "amount",
    "occurred_at",
    "job_id",
    "run_id",
    "reference",
    "reverses_seq",
    "prev_hash",
    "hash",
)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append. Quantities and amounts are scaled integers (4 and 8 decimals), signed."""

    event_type: str
    sku: str
    lot_id: str
    quantity: int
    unit_cost: int
    amount: int
    occurred_at: datetime
    reference: str | None = None
    bin_id: str | None = None
    reverses_seq: int | None = None


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(
    tenant_id: str,
    seq: int,
    event_type: str,
    sku: str,
    lot_id: str,
    bin_id: str | None,
    quantity: str,
    unit_cost: str,
    amount: str,
    occurred_at: datetime,
    job_id: str,
    run_id: str | None,
    reference: str | None,
    reverses_seq: int | None,
) -> str:
    return "\x1f".join(
        (
            tenant_id,
            str(seq),
            event_type,
            sku,
            lot_id,
            bin_id or "",
            quantity,
            unit_cost,
            amount,
            _timestamp(occurred_at),
            job_id,
            run_id or "",
            reference or "",
            "" if reverses_seq is None else str(reverses_seq),
        )
    )


def chain_hash(prev_hash: str, canonical_form: str) -> str:
    return hashlib.sha256(f"{prev_hash}\x1e{canonical_form}".encode()).hexdigest()


def decimal_text(value: Decimal, scale: int) -> str:
    """The canonical text of a stored NUMERIC, as `append_events` formatted it."""
    return format_scaled(int(value.scaleb(scale)), scale)


def append_events(
    session: Session, tenant_id: str, events: Sequence[NewEvent], *, job_id: str, run_id: str | None
) -> tuple[int, int]:
    """Append events in order with COPY; returns the (first, last) seq written. The ledger head row lock
    serializes writers of one tenant (they also hold the tenant fence)."""
    if not events:
        return 0, 0
    head = session.execute(
        select(LedgerHead.seq, LedgerHead.hash).where(LedgerHead.tenant_id == tenant_id).with_for_update()
    ).one()
    seq, prev = int(head.seq), str(head.hash)
    first = seq + 1
    rows = []
    for event in events:
        seq += 1
        quantity = format_scaled(event.quantity, QTY_SCALE)
        unit_cost = format_scaled(event.unit_cost, COST_SCALE)
        amount = format_scaled(event.amount, AMOUNT_SCALE)
        digest = chain_hash(
            prev,
            canonical(
                tenant_id,
                seq,
                event.event_type,
                event.sku,
                event.lot_id,
                event.bin_id,
                quantity,
                unit_cost,
                amount,
                event.occurred_at,
                job_id,
                run_id,
                event.reference,
                event.reverses_seq,
            ),
        )
        rows.append(
            (
                tenant_id,
                seq,
                event.event_type,
                event.sku,
                event.lot_id,
                event.bin_id,
                quantity,
                unit_cost,
                amount,
                event.occurred_at,
                job_id,
                run_id,
                event.reference,
                event.reverses_seq,
                prev,
                digest,
            )
        )
        prev = digest
    copy_rows(session, "ledger_events", COLUMNS, rows)
    session.execute(update(LedgerHead).where(LedgerHead.tenant_id == tenant_id).values(seq=seq, hash=prev))
    return first, seq
