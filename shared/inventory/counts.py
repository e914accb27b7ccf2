"""Cycle counts: accepted as jobs (`submit_count`, which refuses a gain certain to lack a cost basis), then
executed by the worker (`post_count`): expected vs counted per line, and the differences ledgered as
ADJUSTMENT events, checked again under the tenant fence with the bin's lots locked. The worker's answer is
the one that counts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from shared.auth import Principal
from shared.base import new_id
from shared.copyio import copy_rows
from shared.decimals import AMOUNT_SCALE, COST_SCALE, QTY_SCALE, format_scaled
from shared.errors import NotFound, ValidationFailed
from shared.inventory import checks, master
from shared.inventory.models import Bin, Count, CountLine
from shared.inventory.schemas import CountCreate, CountLineIn, CountPayload
from shared.jobs import service as jobs
from shared.jobs.kinds import JobKind
from shared.jobs.models import Job
from shared.jobs.service import AcceptedJob
from shared.ledger.lots import NewLots, apply_deltas, encode_deltas, insert_lots
from shared.ledger.service import NewEvent, append_events
from shared.pagination import page
from shared.runs import backdating, methods


def _check_count_lines(
    session: Session, tenant_id: str, bin_id: str, lines: Sequence[CountLineIn], *, share: bool
) -> None:
    if master.find_live(session, Bin, tenant_id, bin_id, share=share) is None:
        raise ValidationFailed(
            f"bin '{bin_id}' does not exist",
            reason="MISSING_PARENT",
            details=[checks.missing_parent("bin_id", "bin", bin_id)],
        )
    items = checks.live_items(session, tenant_id, [line.sku for line in lines], share=share)
    errors: list[dict[str, Any]] = []
    first_row: dict[str, int] = {}
    for row, line in enumerate(lines, 1):
        if line.sku not in items:
            errors.append(checks.unknown_sku(row, line.sku))
        elif line.sku in first_row:
            errors.append(
                {
                    "row": row,
                    "field": "sku",
                    "reason": "DUPLICATE_LINE",
                    "message": f"SKU '{line.sku}' is counted twice (rows {first_row[line.sku]} and {row})",
                }
            )
        else:
            first_row[line.sku] = row
    if errors:
        raise checks.refusal(errors, "count")


@dataclass
class _BinLot:
    lot_id: str
    sku: str
    remaining: int
    unit_cost: int


def _bin_lots(
    session: Session, tenant_id: str, bin_id: str, skus: list[str], *, lock: bool
) -> dict[str, list[_BinLot]]:
    """Live lots with stock of these SKUs in the bin, oldest received first (the FIFO order)."""
    rows = session.execute(
        text(f"""
        SELECT lot_id, sku, remaining_quantity, unit_cost FROM lots
        WHERE tenant_id = :t AND bin_id = :b AND status = 'live' AND remaining_quantity > 0 AND sku = ANY(:skus)
        ORDER BY sku, received_at, lot_id {"FOR UPDATE" if lock else ""}"""),
        {"t": tenant_id, "b": bin_id, "skus": skus},
    ).all()
    out: dict[str, list[_BinLot]] = defaultdict(list)
    for lot_id, sku, remaining, cost in rows:
        out[sku].append(_BinLot(lot_id, sku, checks.scaled(remaining, QTY_SCALE), checks.scaled(cost, COST_SCALE)))
    return out


def _receipt_costs(session: Session, tenant_id: str, skus: list[str], as_of: datetime) -> dict[str, int]:
    """Each SKU's unit cost at its latest receipt (of a live lot) at or before `as_of`."""
    if not skus:
        return {}
    rows = session.execute(
        text("""
        SELECT DISTINCT ON (e.sku) e.sku, e.unit_cost FROM ledger_events e
        JOIN lots l ON l.tenant_id = e.tenant_id AND l.lot_id = e.lot_id AND l.receipt_seq = e.seq
        WHERE e.tenant_id = :t AND e.event_type = 'RECEIPT' AND e.sku = ANY(:skus) AND e.occurred_at <= :as_of
              AND l.status = 'live'
        ORDER BY e.sku, e.occurred_at DESC, e.seq DESC"""),
        {"t": tenant_id, "skus": skus, "as_of": as_of},
    ).all()
    return {sku: checks.scaled(cost, COST_SCALE) for sku, cost in rows}


def _no_cost_basis(row: int, sku: str) -> dict[str, Any]:
    return {
        "row": row,
        "field": "unit_cost",
        "reason": "NO_COST_BASIS",
        "message": f"SKU '{sku}' gained stock but has no receipt to value it by; give unit_cost on the line",
    }


def _gains_without_basis(
    count: CountPayload, lots: dict[str, list[_BinLot]], costs: dict[str, int]
) -> list[dict[str, Any]]:
    """Lines whose count exceeds the bin's stock, with no unit_cost given and no receipt to value them by."""
    return [
        _no_cost_basis(row, line.sku)
        for row, line in enumerate(count.lines, 1)
        if line.unit_cost is None
        and line.sku not in costs
        and checks.scaled(line.counted_quantity, QTY_SCALE) > sum(lot.remaining for lot in lots.get(line.sku, []))
    ]


def _gain_entries(count: CountPayload, lots: dict[str, list[_BinLot]]) -> list[backdating.Entry]:
    """The lines that gain stock (a new lot dated at the count), for the costing boundary."""
    return [
        backdating.Entry(row, line.sku, count.counted_at)
        for row, line in enumerate(count.lines, 1)
        if checks.scaled(line.counted_quantity, QTY_SCALE) > sum(lot.remaining for lot in lots.get(line.sku, []))
    ]


def _skus(lines: Sequence[CountLineIn]) -> list[str]:
    return sorted({line.sku for line in lines})


def submit_count(
    session: Session, *, tenant_id: str, actor: Principal, body: CountCreate, request_id: str | None = None
) -> tuple[Count, AcceptedJob]:
    """Accept a cycle count as a job. A gain that is certain to lack a cost basis is refused now; the
    worker decides everything else against the stock at execution time."""
    _check_count_lines(session, tenant_id, body.bin_id, body.lines, share=False)
    payload = CountPayload(count_id=new_id("cnt"), bin_id=body.bin_id, counted_at=body.counted_at, lines=body.lines)
    job = jobs.accept_job(
        session,
        tenant_id=tenant_id,
        kind=JobKind.COUNT,
        payload=payload.model_dump(mode="json"),
        actor=actor,
        number_now=True,
    )
    # Numbered first, unlike other intake: accept_job holds the tenant's counter row, so every job numbered before
    # this one has committed, and with none of them pending the stock this count will meet is the stock we see
    # now. (Counts are few; the longer critical section is the price of deciding the refusal here.)
    earlier_pending = session.scalar(
        select(Job.id)
        .where(Job.tenant_id == tenant_id, Job.seq < job.seq, Job.status.in_(("queued", "running")))
        .limit(1)
    )
    if earlier_pending is None:
        lots = _bin_lots(session, tenant_id, body.bin_id, _skus(body.lines), lock=False)
        costs = _receipt_costs(session, tenant_id, _skus(body.lines), body.counted_at)
        if errors := _gains_without_basis(payload, lots, costs):
            raise checks.refusal(errors, "count")
        backdating.check(session, tenant_id, _gain_entries(payload, lots), field="counted_at", what="a count's gain")
    count = Count(
        id=payload.count_id, tenant_id=tenant_id, job_id=job.id, bin_id=body.bin_id, counted_at=body.counted_at
    )
    session.add(count)
    session.flush()
    checks.audit_ok(
        session,
        actor,
        tenant_id,
        "count.accepted",
        count.id,
        request_id=request_id,
        job_id=job.id,
        bin_id=body.bin_id,
        lines=len(body.lines),
    )
    return count, job


def post_count(session: Session, job: Job) -> dict[str, Any]:
    """Record expected vs counted per line and ledger the differences as ADJUSTMENT events: shrink consumes
    the bin's lots oldest first at their cost; a gain becomes a new lot `ADJ-<count id>-<line>`. For a SKU held
    to moving average both move at the pool's unit cost in force, and a loss that empties the pool takes its
    whole value (shared/runs/methods.py `moving_average_pools`)."""
    count = CountPayload.model_validate(job.payload)
    tenant_id = job.tenant_id
    _check_count_lines(session, tenant_id, count.bin_id, count.lines, share=True)
    lots = _bin_lots(session, tenant_id, count.bin_id, _skus(count.lines), lock=True)
    costs = _receipt_costs(session, tenant_id, _skus(count.lines), count.counted_at)
    if errors := _gains_without_basis(count, lots, costs):
        raise checks.refusal(errors, "count")
    backdated = backdating.check(
        session, tenant_id, _gain_entries(count, lots), field="counted_at", what="a count's gain"
    )

    # A moving-average SKU's difference moves at its pool's unit cost, not its lots' (docs/costing.md).
    pools = methods.moving_average_pools(session, tenant_id, _skus(count.lines))
    events: list[NewEvent] = []
    consumed: dict[str, int] = {}
    gains: list[tuple[str, str, int, int, int]] = []  # lot_id, sku, quantity, unit cost, event index
    line_rows = []
    for row, line in enumerate(count.lines, 1):
        available = lots.get(line.sku, [])
        expected = sum(lot.remaining for lot in available)
        counted = checks.scaled(line.counted_quantity, QTY_SCALE)
        difference = counted - expected
        amount = 0
        unit_cost: int | None = None
        pool = pools.get(line.sku)
        if difference < 0:
            short = -difference
            for lot in available:
                take = min(short, lot.remaining)
                if take <= 0:
                    break
                cost = lot.unit_cost if pool is None or pool.average is None else pool.average
                events.append(
                    NewEvent(
                        "ADJUSTMENT",
                        line.sku,
                        lot.lot_id,
                        -take,
                        cost,
                        -take * cost,
                        count.counted_at,
                        reference=count.count_id,
                        bin_id=count.bin_id,
                    )
                )
                consumed[lot.lot_id] = consumed.get(lot.lot_id, 0) + take
                amount -= take * cost
                short -= take
            if pool is not None and pool.average is not None and -difference == pool.quantity:
                # The loss empties the pool: it takes the pool's whole value, as the emptying sale does.
                events[-1] = replace(events[-1], amount=events[-1].amount - pool.value - amount)
                amount = -pool.value
        elif difference > 0:
            if line.unit_cost is not None:
                unit_cost = checks.scaled(line.unit_cost, COST_SCALE)
            elif pool is not None and pool.average is not None:
                unit_cost = pool.average  # a gain joins the pool at its unit cost in force
            else:
                unit_cost = costs[line.sku]
            lot_id = f"ADJ-{count.count_id}-{row}"
            gains.append((lot_id, line.sku, difference, unit_cost, len(events)))
            events.append(
                NewEvent(
                    "ADJUSTMENT",
                    line.sku,
                    lot_id,
                    difference,
                    unit_cost,
                    difference * unit_cost,
                    count.counted_at,
                    reference=count.count_id,
                    bin_id=count.bin_id,
                )
            )
            amount = difference * unit_cost
        line_rows.append(
            (
                count.count_id,
                row,
                tenant_id,
                line.sku,
                format_scaled(expected, QTY_SCALE),
                format_scaled(counted, QTY_SCALE),
                format_scaled(difference, QTY_SCALE),
                None if unit_cost is None else format_scaled(unit_cost, COST_SCALE),
                format_scaled(amount, AMOUNT_SCALE),
            )
        )

    first_seq, last_seq = append_events(session, tenant_id, events, job_id=job.id, run_id=None)
    if consumed:
        apply_deltas(session, tenant_id, [encode_deltas(list(consumed), [-q for q in consumed.values()])])
    if gains:
        rows = [
            (lot_id, sku, count.bin_id, None, count.counted_at, quantity, cost, 0, first_seq + index)
            for lot_id, sku, quantity, cost, index in gains
        ]
        insert_lots(session, tenant_id, NewLots.from_rows(rows, source_job_id=job.id))
    copy_rows(
        session,
        "count_lines",
        (
            "count_id",
            "line",
            "tenant_id",
            "sku",
            "expected_quantity",
            "counted_quantity",
            "difference",
            "unit_cost",
            "amount",
        ),
        line_rows,
    )
    repost = backdating.queue_repost(session, tenant_id, backdated, cause=job.id)
    return {
        **({"repost_job_id": repost.id} if repost else {}),
        "count_id": count.count_id,
        "lines": len(line_rows),
        "adjustments": len(events),
        "first_seq": first_seq or None,
        "last_seq": last_seq or None,
    }


def get_count(session: Session, tenant_id: str, count_id: str) -> dict[str, Any]:
    """A count with its status and lines: expected and difference once executed, as requested before."""
    if len(count_id) > master.MAX_ID_LENGTH or "\x00" in count_id:
        raise NotFound(f"count '{count_id}' not found")
    row = session.execute(
        select(Count, Job).join(Job, Job.id == Count.job_id).where(Count.id == count_id, Count.tenant_id == tenant_id)
    ).first()
    if row is None:
        raise NotFound(f"count '{count_id}' not found")
    count, job = row
    stored = session.scalars(
        select(CountLine)
        .where(CountLine.count_id == count.id, CountLine.tenant_id == tenant_id)
        .order_by(CountLine.line)
    ).all()
    if stored:
        lines = [
            {
                "line": line.line,
                "sku": line.sku,
                "counted_quantity": line.counted_quantity,
                "expected_quantity": line.expected_quantity,
                "difference": line.difference,
                "unit_cost": line.unit_cost,
                "amount": line.amount,
            }
            for line in stored
        ]
    else:
        requested = CountPayload.model_validate(job.payload).lines
        lines = [
            {
                "line": n,
                "sku": line.sku,
                "counted_quantity": line.counted_quantity,
                "expected_quantity": None,
                "difference": None,
                "unit_cost": line.unit_cost,
                "amount": None,
            }
            for n, line in enumerate(requested, 1)
        ]
    return {**_count_summary(count, job), "error": job.error, "lines": lines}


def _count_summary(count: Count, job: Job) -> dict[str, Any]:
    return {
        "id": count.id,
        "job_id": count.job_id,
        "bin_id": count.bin_id,
        "counted_at": count.counted_at,
        "status": job.status,
        "created_at": count.created_at,
    }


def list_counts(
    session: Session, tenant_id: str, *, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    query = select(Count, Job).join(Job, Job.id == Count.job_id).where(Count.tenant_id == tenant_id)
    rows, next_cursor = page(
        session, query, Count.id, limit=limit, cursor=cursor, scalars=False, key_of=lambda row: row[0].id
    )
    return [_count_summary(count, job) for count, job in rows], next_cursor
