"""Switching a SKU away from moving average with a revaluation (`PUT /valuation-methods/{sku}` with `revalue`):
the `revaluation` job, executed under the tenant's fence, and its journal entry (docs/costing.md "Switching").

A moving-average pool may hold value beyond its lots' own costs (the carried value, `methods.carried_values`).
FIFO and LIFO value stock at those costs, so the switch posts the difference once, explicitly:
- The carried value C is re-read here, under the fence: runs, counts or returns accepted before the job may
  have changed it since intake. With C = 0 the job only switches the SKU.
- The revaluation is -C (positive when the pool was worth less than its lots), posted as one REVALUATION event
  (quantity 0, unit cost 0) per live lot of the SKU with stock, split pro rata by the lots' quantities on hand,
  each share truncated toward zero at 10^-8 and the remainder on the last lot in (received_at, lot_id) order,
  so the shares sum exactly to -C. The lots' unit costs do not change: the split only says which lot the
  adjustment is recorded against. (With stock nowhere, the whole of it goes on the SKU's latest lot.)
- Afterwards the SKU's ledger amounts sum to its lots' quantity x unit cost (carried value 0), its method row
  names the new method, `sku.valuation_method_switched` is audited with `revalued`, and `sku.revalued` is
  queued for subscribed integrations, all in the job's transaction.
- Journal: Dr Inventory / Cr COGS for a positive revaluation, the reverse for a negative one, dated the day
  the switch was requested (UTC), rounded half up to cents. The counterpart is COGS because the carried value
  is the rounding of moving-average issues, which went to COGS.
"""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from shared.costing import Method
from shared.decimals import AMOUNT_SCALE, QTY_SCALE, format_scaled
from shared.errors import NotFound
from shared.jobs.kinds import JobKind
from shared.jobs.models import Job
from shared.ledger.models import EventType
from shared.ledger.service import EventBatch, append_batches
from shared.runs import methods
from shared.runs.models import SkuValuationMethod
from shared.runs.schemas import RevaluationPayload


def split(total: int, quantities: list[int]) -> list[int]:
    """`total` (scaled 10^8, signed) over lots holding `quantities` (scaled 10^4, > 0, in allocation order): pro
    rata, each share truncated toward zero, the remainder on the last lot. Shares sum to `total` exactly and all
    carry its sign. A pure function."""
    assert quantities
    assert all(q > 0 for q in quantities)
    base = sum(quantities)
    sign, magnitude = (-1 if total < 0 else 1), abs(total)
    shares = [sign * (magnitude * q // base) for q in quantities[:-1]]
    return [*shares, total - sum(shares)]


def _lots_with_stock(session: Session, tenant_id: str, sku: str) -> list[Any]:
    rows = session.execute(
        text("""
        SELECT lot_id, bin_id, remaining_quantity FROM lots
        WHERE tenant_id = :t AND sku = :sku AND status = 'live' AND remaining_quantity > 0
        ORDER BY received_at, lot_id"""),
        {"t": tenant_id, "sku": sku},
    ).all()
    if rows:
        return list(rows)
    latest = session.execute(
        text("""SELECT lot_id, bin_id, 0 FROM lots WHERE tenant_id = :t AND sku = :sku
                ORDER BY received_at DESC, lot_id DESC LIMIT 1"""),
        {"t": tenant_id, "sku": sku},
    ).all()
    return list(latest)


def post_revaluation(session: Session, job: Job) -> dict[str, Any]:
    """Revalue the SKU's stock to its lots' own costs (when anything is carried by now) and switch it."""
    payload = RevaluationPayload.model_validate(job.payload)
    tenant_id, sku, method = job.tenant_id, payload.sku, Method(payload.method)
    previous = session.scalar(
        select(SkuValuationMethod.method)
        .where(SkuValuationMethod.tenant_id == tenant_id, SkuValuationMethod.sku == sku)
        .with_for_update()
    )
    carried = methods.carried_values(session, tenant_id, [sku]).get(sku, Decimal(0))
    revalued = -int(carried.scaleb(AMOUNT_SCALE))
    lots = _lots_with_stock(session, tenant_id, sku) if revalued else []
    first_seq = last_seq = None
    if lots:
        on_hand = [max(int(Decimal(q).scaleb(QTY_SCALE)), 1) for *_, q in lots]
        shares = split(revalued, on_hand)
        n = len(lots)
        when = np.datetime64(payload.requested_at.astimezone(UTC).replace(tzinfo=None), "us")
        batch = EventBatch(
            EventType.REVALUATION, sku=[sku] * n, lot_id=[lot.lot_id for lot in lots],
            quantity=np.zeros(n, dtype=np.int64), unit_cost=np.zeros(n, dtype=np.int64),
            amount=np.array(shares, dtype=object), occurred_at=np.full(n, when), reference=[job.id] * n,
            bin_id=[lot.bin_id for lot in lots],
        )  # fmt: skip
        written = append_batches(session, tenant_id, [batch], job_id=job.id, run_id=None)
        first_seq, last_seq = written.first, written.last
    revalued_text = format_scaled(revalued, AMOUNT_SCALE)
    methods.hold_sku(session, tenant_id, sku, method, previous, job=job, revalued=Decimal(revalued_text))
    return {
        "sku": sku,
        "method": method.value,
        "previous_method": previous,
        "revalued": revalued_text,
        "lots": len(lots),
        "first_seq": first_seq,
        "last_seq": last_seq,
    }


def find_revaluation(session: Session, tenant_id: str, job_id: str) -> tuple[Job, int]:
    """The tenant's revaluation job and the amount its events posted (scaled 10^8); 404 for another tenant's or
    another kind of job."""
    job = session.scalar(
        select(Job).where(Job.tenant_id == tenant_id, Job.id == job_id, Job.kind == JobKind.REVALUATION)
    )
    if job is None:
        raise NotFound(f"revaluation '{job_id}' not found")
    amount = session.scalar(
        text("""SELECT coalesce(sum(amount), 0) FROM ledger_events
                WHERE tenant_id = :t AND event_type = 'REVALUATION' AND seq BETWEEN :first AND :last
                  AND job_id = :job"""),
        {
            "t": tenant_id,
            "job": job_id,
            "first": (job.result or {}).get("first_seq") or 0,
            "last": (job.result or {}).get("last_seq") or 0,
        },
    )
    return job, int(Decimal(amount).scaleb(AMOUNT_SCALE))
