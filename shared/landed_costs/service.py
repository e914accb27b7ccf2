"""Landed cost after receipt: accepted as a job (`submit_landed_cost`), posted by the worker
(`post_landed_cost`) under the tenant fence, all or nothing.

How an amount A on lot L is spread (exact integers at the ledger's scales; nothing is lost or made up):
- The units it covers are the lot's units on hand (R) and the units live sales issued from it (S: ISSUE
  events of completed runs, less what sale returns brought back from L). Units that left by count shrink or
  went back to the vendor carry none of it. With R + S = 0 there is nothing to spread (NOTHING_TO_ALLOCATE).
- The per-unit rate u = A / (R + S), rounded down to 4 decimals (the scale of a unit cost; down, so the
  units on hand never take more than A). The lot's unit cost (and its freight) rises by u, so later issues
  from it use the new cost; the units on hand are revalued by R x u.
- The rest, A - R x u (never negative), is the part already issued plus the rate's rounding: it goes to the
  sales that consumed the lot, pro rata by their quantity, each share rounded down at 8 decimals and the
  remainder on the last sale (in ledger order of their issues), so the shares sum exactly. With no such sale it is
  only the rounding remainder (under 0.0001 per unit on hand), and goes to COGS as one adjustment without a
  sale.
- Ledger: one LANDED_COST event on L (quantity 0, unit cost u, amount A) and, per sale, a COST_ADJUSTMENT on L
  (quantity 0, amount minus its share, run_id the sale's run, reference the sale id): the lot's ledger amounts
  still sum to its remaining quantity times its unit cost.
- A run with landed-cost adjustments on its sales, or whose lot received a landed cost, can no longer be
  rolled back (shared/runs/service.py `rollback_set`): its reversal would return units at a cost the lot no
  longer carries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.auth import Principal
from shared.base import new_id
from shared.copyio import copy_rows
from shared.decimals import AMOUNT_SCALE, COST_SCALE, QTY_SCALE, format_scaled
from shared.errors import ValidationFailed
from shared.inventory import checks
from shared.jobs import service as jobs
from shared.jobs.kinds import JobKind
from shared.jobs.models import Job
from shared.jobs.service import AcceptedJob
from shared.landed_costs.models import LandedCost, LandedCostLine, Target
from shared.landed_costs.schemas import LandedCostCreate, LandedCostPayload
from shared.ledger.models import EventType
from shared.ledger.service import EventBatch, NewEvent, append_batches, append_events

LINE_COLUMNS = (
    "landed_cost_id", "line", "tenant_id", "target", "run_id", "quantity", "unit_cost", "amount",
)  # fmt: skip
_TO_AMOUNT = 10 ** (AMOUNT_SCALE - COST_SCALE)


@dataclass(frozen=True)
class Share:
    target: Target
    run_id: str | None
    sale_id: str | None
    quantity: int  # scaled 10^4
    amount: int  # scaled 10^8


@dataclass
class Allocation:
    """A landed cost spread over a lot: the per-unit rate (scaled 10^4) and where each part goes."""

    sku: str
    bin_id: str | None
    rate: int
    shares: list[Share] = field(default_factory=list)

    @property
    def on_hand(self) -> int:
        return sum(s.amount for s in self.shares if s.target == Target.ON_HAND)

    @property
    def issued(self) -> int:
        return sum(s.amount for s in self.shares if s.target != Target.ON_HAND)


def _refused(message: str, reason: str, field_name: str) -> ValidationFailed:
    return ValidationFailed(
        f"the landed cost was refused: {message}; nothing was written",
        reason=reason,
        details=[{"field": field_name, "reason": reason, "message": message}],
    )


def spread(amount: int, on_hand: int, sales: list[tuple[str, str, int]]) -> tuple[int, list[Share]]:
    """The rate and the shares of `amount` (scaled 10^4) over `on_hand` units and the sales' units (each
    `(run_id, sale_id, quantity)`, quantities scaled 10^4, in allocation order). A pure function."""
    issued_units = sum(q for *_, q in sales)
    base = on_hand + issued_units
    assert base > 0
    rate = amount * 10**QTY_SCALE // base  # A / base at 4 decimals, rounded down: no share is ever negative
    total = amount * _TO_AMOUNT
    shares = [Share(Target.ON_HAND, None, None, on_hand, on_hand * rate)] if on_hand else []
    rest = total - on_hand * rate
    if not sales:
        if rest:
            shares.append(Share(Target.ROUNDING, None, None, 0, rest))
        return rate, shares
    given = 0
    for n, (run_id, sale_id, quantity) in enumerate(sales):
        part = rest - given if n == len(sales) - 1 else rest * quantity // issued_units
        shares.append(Share(Target.SALES, run_id, sale_id, quantity, part))
        given += part
    return rate, shares


def _live_lot(session: Session, tenant_id: str, lc: LandedCostPayload, *, lock: bool) -> Any:
    """The lot (sku, bin_id, received_at, remaining_quantity), live and received at or before `allocated_at`."""
    lot = session.execute(
        text(f"""
        SELECT sku, bin_id, received_at, remaining_quantity FROM lots
        WHERE tenant_id = :t AND lot_id = :lot AND status = 'live' {"FOR UPDATE" if lock else ""}"""),
        {"t": tenant_id, "lot": lc.lot_id},
    ).first()
    if lot is None:
        raise _refused(f"lot '{lc.lot_id}' does not exist (or its receipt was reversed)", "MISSING_PARENT", "lot_id")
    if lc.allocated_at < lot.received_at:
        raise _refused(
            f"allocated_at is before the lot was received ({lot.received_at.isoformat()})",
            "ALLOCATED_BEFORE_RECEIPT",
            "allocated_at",
        )
    return lot


def _allocate(session: Session, tenant_id: str, lc: LandedCostPayload, *, lock: bool) -> Allocation:
    sku, bin_id, received_at, remaining = _live_lot(session, tenant_id, lc, lock=lock)
    binds: dict[str, Any] = {"t": tenant_id, "lot": lc.lot_id, "received": received_at}
    # A sale consumes only lots received at or before its date, so the time index bounds the search.
    # One ISSUE per sale and lot, in ledger order (a run's sales in the order it costed them).
    issued: dict[tuple[str, str], Decimal] = {}
    for run_id, sale_id, quantity in session.execute(
        text("""
        SELECT e.run_id, e.reference, -e.quantity FROM ledger_events e
        WHERE e.tenant_id = :t AND e.occurred_at >= :received AND e.lot_id = :lot AND e.event_type = 'ISSUE'
          AND e.run_id IN (SELECT id FROM runs WHERE tenant_id = :t AND status = 'completed' AND NOT dry_run)
        ORDER BY e.seq"""),
        binds,
    ):
        issued[(run_id, sale_id)] = issued.get((run_id, sale_id), Decimal(0)) + quantity
    returned = {
        (run_id, sale_id): quantity
        for run_id, sale_id, quantity in session.execute(
            text("""
            SELECT rl.run_id, r.sale_id, sum(rl.quantity) FROM return_lines rl JOIN returns r ON r.id = rl.return_id
            WHERE rl.tenant_id = :t AND rl.source_lot_id = :lot AND r.kind = 'sale' GROUP BY rl.run_id, r.sale_id"""),
            binds,
        )
    }
    sales = [
        (run_id, sale_id, checks.scaled(quantity - returned.get((run_id, sale_id), 0), QTY_SCALE))
        for (run_id, sale_id), quantity in issued.items()
    ]
    sales = [s for s in sales if s[2] > 0]
    on_hand = checks.scaled(remaining, QTY_SCALE)
    if on_hand + sum(s[2] for s in sales) == 0:
        raise _refused(
            f"lot '{lc.lot_id}' has no units on hand and none issued to live sales", "NOTHING_TO_ALLOCATE", "lot_id"
        )
    rate, shares = spread(checks.scaled(lc.amount, COST_SCALE), on_hand, sales)
    return Allocation(sku=sku, bin_id=bin_id, rate=rate, shares=shares)


def submit_landed_cost(
    session: Session, *, tenant_id: str, actor: Principal, body: LandedCostCreate, request_id: str | None = None
) -> tuple[LandedCost, AcceptedJob]:
    """Accept a landed cost as a job; a refusal certain now (no earlier job pending) is answered now."""
    payload = LandedCostPayload(
        landed_cost_id=new_id("lc"), lot_id=body.lot_id, amount=body.amount, allocated_at=body.allocated_at
    )
    job = jobs.accept_job(
        session,
        tenant_id=tenant_id,
        kind=JobKind.LANDED_COST,
        payload=payload.model_dump(mode="json"),
        actor=actor,
        number_now=True,
    )
    assert job.seq is not None
    # Certain now when nothing is pending. Stock on hand is enough to carry it; only a lot with none left needs
    # the sales that issued it looked up (the worker always does).
    if (
        not jobs.earlier_pending(session, tenant_id, job.seq)
        and not _live_lot(session, tenant_id, payload, lock=False).remaining_quantity
    ):
        _allocate(session, tenant_id, payload, lock=False)
    row = LandedCost(
        id=payload.landed_cost_id, tenant_id=tenant_id, job_id=job.id, lot_id=body.lot_id, amount=body.amount,
        allocated_at=body.allocated_at, memo=body.memo,
    )  # fmt: skip
    session.add(row)
    session.flush()
    checks.audit_ok(
        session, actor, tenant_id, "landed_cost.accepted", row.id, request_id=request_id, job_id=job.id,
        lot_id=body.lot_id, amount=format(body.amount, "f"),
    )  # fmt: skip
    return row, job


def post_landed_cost(session: Session, job: Job) -> dict[str, Any]:
    """Revalue the lot, adjust the COGS of the sales that consumed it, and record the lines."""
    lc = LandedCostPayload.model_validate(job.payload)
    tenant_id = job.tenant_id
    alloc = _allocate(session, tenant_id, lc, lock=True)
    amount = checks.scaled(lc.amount, COST_SCALE) * _TO_AMOUNT

    def event(value: int, *, reference: str, kind: str = EventType.COST_ADJUSTMENT, rate: int = 0) -> NewEvent:
        return NewEvent(kind, alloc.sku, lc.lot_id, 0, rate, value, lc.allocated_at, reference, alloc.bin_id)

    own = [event(amount, reference=lc.landed_cost_id, kind=EventType.LANDED_COST, rate=alloc.rate)]
    own += [event(-s.amount, reference=lc.landed_cost_id) for s in alloc.shares if s.target == Target.ROUNDING]
    first_seq, last_seq = append_events(session, tenant_id, own, job_id=job.id, run_id=None)
    by_run: dict[str, list[Share]] = {}
    for share in alloc.shares:
        if share.target == Target.SALES and share.amount and share.run_id is not None:
            by_run.setdefault(share.run_id, []).append(share)
    when = np.datetime64(lc.allocated_at.astimezone(UTC).replace(tzinfo=None), "us")
    for run_id, shares in by_run.items():  # an event's run_id is its batch's: one append per run, set-based
        n = len(shares)
        batch = EventBatch(
            EventType.COST_ADJUSTMENT, sku=[alloc.sku] * n, lot_id=[lc.lot_id] * n,
            quantity=np.zeros(n, dtype=np.int64), unit_cost=np.zeros(n, dtype=np.int64),
            amount=np.array([-share.amount for share in shares], dtype=object), occurred_at=np.full(n, when),
            reference=[share.sale_id for share in shares], bin_id=[alloc.bin_id] * n,
        )  # fmt: skip
        last_seq = append_batches(session, tenant_id, [batch], job_id=job.id, run_id=run_id).last
    session.execute(
        text("""
        UPDATE lots SET unit_cost = unit_cost + :u, freight_cost_per_unit = freight_cost_per_unit + :u
        WHERE tenant_id = :t AND lot_id = :lot"""),
        {"t": tenant_id, "lot": lc.lot_id, "u": Decimal(alloc.rate).scaleb(-COST_SCALE)},
    )
    _write_lines(session, tenant_id, lc.landed_cost_id, alloc)
    return {
        "landed_cost_id": lc.landed_cost_id,
        "lot_id": lc.lot_id,
        "sku": alloc.sku,
        "amount": format_scaled(amount, AMOUNT_SCALE),
        "unit_cost_increment": format_scaled(alloc.rate, COST_SCALE),
        "on_hand_amount": format_scaled(alloc.on_hand, AMOUNT_SCALE),
        "issued_amount": format_scaled(alloc.issued, AMOUNT_SCALE),
        "sales_adjusted": sum(1 for s in alloc.shares if s.target == Target.SALES),
        "runs_adjusted": len(by_run),
        "first_seq": first_seq,
        "last_seq": last_seq,
    }


def _lines(alloc: Allocation) -> list[Share]:
    """The shares as recorded: the units on hand, one line per run for its sales' shares, the rounding."""
    lines: list[Share] = []
    by_run: dict[str, int] = {}
    for share in alloc.shares:
        if share.target != Target.SALES or share.run_id is None:
            lines.append(share)
        elif share.run_id in by_run:
            line = lines[by_run[share.run_id]]
            lines[by_run[share.run_id]] = Share(
                Target.SALES, share.run_id, None, line.quantity + share.quantity, line.amount + share.amount
            )
        else:
            by_run[share.run_id] = len(lines)
            lines.append(Share(Target.SALES, share.run_id, None, share.quantity, share.amount))
    return lines


def _write_lines(session: Session, tenant_id: str, cost_id: str, alloc: Allocation) -> None:
    rows = [
        (
            cost_id,
            n,
            tenant_id,
            s.target.value,
            s.run_id,
            format_scaled(s.quantity, QTY_SCALE),
            format_scaled(alloc.rate, COST_SCALE),
            format_scaled(s.amount, AMOUNT_SCALE),
        )
        for n, s in enumerate(_lines(alloc), 1)
    ]
    copy_rows(session, "landed_cost_lines", LINE_COLUMNS, rows)


def find_landed_cost(session: Session, tenant_id: str, cost_id: str) -> tuple[LandedCost, Job, list[LandedCostLine]]:
    return jobs.find_posted(session, tenant_id, LandedCost, LandedCostLine, "landed_cost_id", cost_id, "landed cost")


def get_landed_cost(session: Session, tenant_id: str, cost_id: str) -> dict[str, Any]:
    cost, job, lines = find_landed_cost(session, tenant_id, cost_id)
    sku = None
    if lines:
        sku = session.scalar(
            text("SELECT sku FROM lots WHERE tenant_id = :t AND lot_id = :l"), {"t": tenant_id, "l": cost.lot_id}
        )
    return {
        "id": cost.id,
        "job_id": cost.job_id,
        "lot_id": cost.lot_id,
        "sku": sku,
        "amount": cost.amount,
        "allocated_at": cost.allocated_at,
        "memo": cost.memo,
        "status": job.status,
        "error": job.error,
        "created_at": cost.created_at,
        "lines": [
            {
                "line": line.line,
                "target": line.target,
                "run_id": line.run_id,
                "quantity": line.quantity,
                "unit_cost": line.unit_cost,
                "amount": line.amount,
            }
            for line in lines
        ],
    }
