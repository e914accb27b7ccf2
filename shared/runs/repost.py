"""Reposting: re-costing the sales a backdated entry changed, by appending COST_ADJUSTMENT events (the ledger's
history is never rewritten), and reversing a repost.

A repost job names SKUs (`shared/runs/backdating.py` queues one behind each backdated entry accepted in `repost`
mode). For those SKUs it takes every sale costed by a live run and every live lot, gives each lot back what
those sales took from it (its *capacity*: its balance plus what live sales consumed; what counts shrank stays
consumed), and allocates the sales again from scratch through `recost` (the one re-costing seam: each SKU by
the method it is held to, FIFO, LIFO or moving average). The
difference between what each sale took from each lot and what it takes now is appended as COST_ADJUSTMENT
events, one per changed (sale, lot):
- `quantity` = the signed change of the lot's balance (units a sale gives back are positive), `unit_cost` the
  lot's (moving average: the sale's re-costed average), `amount` = the signed change of the value the sale took
  from the lot, so a sale's COGS is minus the sum of the amounts of its ISSUE and COST_ADJUSTMENT events;
- `occurred_at` = the sale's date (as-of balances then match costing the entries in date order), `reference` =
  the sale id, `run_id` = the sale's run, `job_id` = the repost's job.
Lot balances move by the same quantities in the same transaction. Each affected run gets a `repost_runs` row:
its COGS change and the seq range of its adjustments, from which its adjusting journal entry is made.

A repost is rolled back by a `repost` job with `reverse_job_id`: the REVERSAL of each of its adjustments (run id
kept, so a sale's COGS stays the sum over its run's events), the lot balances restored. It is refused while a
later live run sold one of the SKUs, or when the lots it freed were consumed since (409 ROLLBACK_BLOCKED). A
run's own rollback reverses the live adjustments made to it along with its ISSUE events
(`adjustment_ranges`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg import sql
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from shared import costing
from shared.audit import service as audit
from shared.auth import Principal
from shared.base import utcnow
from shared.costing import Method
from shared.decimals import AMOUNT_SCALE, COST_SCALE, QTY_SCALE, format_scaled, to_decimal
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.jobs import service as jobs
from shared.jobs.kinds import JobKind
from shared.jobs.models import Job
from shared.jobs.service import AcceptedJob
from shared.ledger import canonical, lots
from shared.ledger.models import EventType
from shared.ledger.service import EventBatch, chain, lock_head, prepare_batches, write_chained
from shared.runs import fifo, methods
from shared.runs.models import RepostRun

LIVE_RUN = "r.status = 'completed' AND NOT r.dry_run"


def recost(sales: fifo.SalesBatch, available: fifo.LotsBatch, held: Mapping[str, str] | None = None) -> fifo.FifoResult:
    """The one function a repost costs through: each SKU by the method it is held to (`held`: SKU -> method;
    FIFO when absent), from scratch, so a moving-average pool starts empty (every costed sale and live lot of
    the SKU is in the batches). Whether a sale is short does not depend on the method (shared/costing/common.py),
    so the errors are FIFO's under every method. Indexes of the result are into `sales` and `available`."""
    held = held or {}
    sale_method = [Method(held.get(sku, Method.FIFO)) for sku in sales.sku]
    used = sorted(set(sale_method))
    if len(used) <= 1:
        return costing.allocate(used[0] if used else Method.FIFO, sales, available)
    lot_method = np.array([Method(held.get(sku, Method.FIFO)) for sku in available.sku], dtype=object)
    by_sale = np.array(sale_method, dtype=object)
    parts = []
    for method in used:
        si, li = np.flatnonzero(by_sale == method), np.flatnonzero(lot_method == method)
        parts.append((si, li, costing.allocate(method, _take_sales(sales, si), _take_lots(available, li))))
    errors = sorted((e for _, _, p in parts for e in p.errors), key=lambda e: e.row)
    if errors:
        none = np.zeros(0, np.int64)
        return fifo.FifoResult(
            errors=errors, slice_sale=none, slice_lot=none, slice_quantity=none, slice_amount=none,
            sale_cogs=np.zeros(len(sales), np.int64), lot_consumed=np.zeros(len(available), np.int64),
        )  # fmt: skip
    sale_cogs = np.zeros(len(sales), dtype=object)
    lot_consumed = np.zeros(len(available), np.int64)
    for si, li, p in parts:
        sale_cogs[si] = p.sale_cogs.astype(object)
        lot_consumed[li] = p.lot_consumed
    return fifo.FifoResult(
        errors=[],
        slice_sale=np.concatenate([si[p.slice_sale] for si, _, p in parts]),
        slice_lot=np.concatenate([li[p.slice_lot] for _, li, p in parts]),
        slice_quantity=np.concatenate([p.slice_quantity for *_, p in parts]),
        slice_amount=np.concatenate([p.slice_amount.astype(object) for *_, p in parts]),
        sale_cogs=sale_cogs,
        lot_consumed=lot_consumed,
    )


def _take_sales(sales: fifo.SalesBatch, idx: npt.NDArray[np.int64]) -> fifo.SalesBatch:
    picked = idx.tolist()
    return fifo.SalesBatch(
        row=sales.row[idx], sale_id=[sales.sale_id[i] for i in picked], sku=[sales.sku[i] for i in picked],
        sale_date=sales.sale_date[idx], quantity=sales.quantity[idx],
    )  # fmt: skip


def _take_lots(lots_: fifo.LotsBatch, idx: npt.NDArray[np.int64]) -> fifo.LotsBatch:
    picked = idx.tolist()
    return fifo.LotsBatch(
        row=lots_.row[idx], lot_id=[lots_.lot_id[i] for i in picked], sku=[lots_.sku[i] for i in picked],
        received_date=lots_.received_date[idx], quantity=lots_.quantity[idx], unit_cost=lots_.unit_cost[idx],
    )  # fmt: skip


def sale_unit_costs(result: fifo.FifoResult, n_sales: int) -> npt.NDArray[np.int64]:
    """Per sale (scaled 10**4): the unit cost of its first slice, amount / quantity rounded half-up. Under moving
    average that is the pool's average at the sale's date (an emptying sale's rounding remainder is on its last
    slice), what a moving-average COST_ADJUSTMENT carries as `unit_cost` (docs/costing.md)."""
    out = np.zeros(n_sales, np.int64)
    if not len(result.slice_sale):
        return out
    first = np.flatnonzero(np.concatenate([[True], result.slice_sale[1:] != result.slice_sale[:-1]]))
    q, a = result.slice_quantity[first], result.slice_amount[first]
    if a.dtype == object or int(np.abs(a).max()) >= 2**61:
        rounded = [(2 * int(x) + int(y)) // (2 * int(y)) for x, y in zip(a.tolist(), q.tolist(), strict=True)]
        out[result.slice_sale[first]] = np.array(rounded, dtype=np.int64)
    else:
        out[result.slice_sale[first]] = (2 * a.astype(np.int64) + q) // (2 * q)
    return out


@dataclass(frozen=True, slots=True)
class Books:
    """The costed state of some SKUs: live runs' sales, live lots at their capacity, and what each sale has
    posted against each lot so far (`posted_*`, indexes into `sales` and `lots`, scaled quantities/amounts)."""

    sales: fifo.SalesBatch
    sale_run: list[str]
    lots: fifo.LotsBatch
    remaining: npt.NDArray[np.int64]
    posted_sale: npt.NDArray[np.int64]
    posted_lot: npt.NDArray[np.int64]
    posted_quantity: npt.NDArray[np.int64]
    posted_amount: npt.NDArray[Any]


def _scaled(values: Sequence[Any], scale: int) -> list[int]:
    return [int(v.scaleb(scale)) for v in values]


def load_books(session: Session, tenant_id: str, skus: list[str]) -> Books:
    # The SKUs as a relation joined by hash, not `sku = ANY(:skus)`: a bound array is scanned per row, which for
    # a thousand SKUs over a few hundred thousand events was most of a repost's time.
    binds = {"t": tenant_id, "skus": skus}
    wanted = "JOIN unnest(CAST(:skus AS text[])) AS k(sku) ON k.sku = {column}"
    sales = session.execute(
        text(f"""
        SELECT s.run_id, s.sale_id, s.sku, s.sale_date, s.quantity FROM run_sales s
        JOIN runs r ON r.tenant_id = :t AND r.id = s.run_id AND {LIVE_RUN}
        {wanted.format(column="s.sku")}
        WHERE s.tenant_id = :t"""),
        binds,
    ).all()
    lot_rows = session.execute(
        text(f"""
        SELECT l.lot_id, l.sku, l.received_at, l.remaining_quantity, l.unit_cost FROM lots l
        {wanted.format(column="l.sku")}
        WHERE l.tenant_id = :t AND l.status = 'live'"""),
        binds,
    ).all()
    # Net consumption per (sale, lot) of live runs: ISSUE, COST_ADJUSTMENT and reversals of adjustments (a live
    # run's only REVERSAL events; a rolled-back run is not live).
    posted = session.execute(
        text(f"""
        SELECT e.reference, e.lot_id, -sum(e.quantity), -sum(e.amount) FROM ledger_events e
        JOIN runs r ON r.tenant_id = :t AND r.id = e.run_id AND {LIVE_RUN}
        {wanted.format(column="e.sku")}
        WHERE e.tenant_id = :t AND e.event_type IN ('ISSUE', 'COST_ADJUSTMENT', 'REVERSAL')
        GROUP BY e.reference, e.lot_id"""),
        binds,
    ).all()
    sale_index = {row[1]: i for i, row in enumerate(sales)}
    lot_index = {row[0]: j for j, row in enumerate(lot_rows)}
    kept = [p for p in posted if p[0] in sale_index and p[1] in lot_index]
    posted_sale = np.array([sale_index[p[0]] for p in kept], dtype=np.int64)
    posted_lot = np.array([lot_index[p[1]] for p in kept], dtype=np.int64)
    posted_quantity = np.array(_scaled([p[2] for p in kept], QTY_SCALE), dtype=np.int64)
    posted_amount = np.array(_scaled([p[3] for p in kept], AMOUNT_SCALE), dtype=object)
    remaining = np.array(_scaled([r[3] for r in lot_rows], QTY_SCALE), dtype=np.int64)
    capacity = remaining.copy()
    np.add.at(capacity, posted_lot, posted_quantity)
    return Books(
        sales=fifo.SalesBatch(
            row=np.arange(1, len(sales) + 1, dtype=np.int64),
            sale_id=[s[1] for s in sales],
            sku=[s[2] for s in sales],
            sale_date=np.array([fifo.to_datetime64(s[3]) for s in sales], dtype="datetime64[us]").reshape(-1),
            quantity=np.array(_scaled([s[4] for s in sales], QTY_SCALE), dtype=np.int64),
        ),
        sale_run=[s[0] for s in sales],
        lots=fifo.LotsBatch(
            row=np.zeros(len(lot_rows), np.int64),
            lot_id=[r[0] for r in lot_rows],
            sku=[r[1] for r in lot_rows],
            received_date=np.array([fifo.to_datetime64(r[2]) for r in lot_rows], dtype="datetime64[us]").reshape(-1),
            quantity=capacity,
            unit_cost=np.array(_scaled([r[4] for r in lot_rows], COST_SCALE), dtype=np.int64),
        ),
        remaining=remaining,
        posted_sale=posted_sale,
        posted_lot=posted_lot,
        posted_quantity=posted_quantity,
        posted_amount=posted_amount,
    )


def date_order_errors(
    session: Session, tenant_id: str, sb: fifo.SalesBatch, new: fifo.LotsBatch, skus: set[str]
) -> list[fifo.RowError]:
    """For a run with backdated sales (repost mode), the check its repost will make: the SKUs' costed sales, the
    run's sales and new lots costed together in date order. The run's short sales are reported on their rows;
    an already-costed sale the run would leave short is reported on the run's sales of that SKU."""
    books = load_books(session, tenant_id, sorted(skus))
    picked = [i for i, sku in enumerate(sb.sku) if sku in skus]
    lots_picked = [j for j, sku in enumerate(new.sku) if sku in skus]
    sales = fifo.SalesBatch(
        row=np.concatenate([-np.arange(1, len(books.sales) + 1, dtype=np.int64), sb.row[picked]]),
        sale_id=books.sales.sale_id + [sb.sale_id[i] for i in picked],
        sku=books.sales.sku + [sb.sku[i] for i in picked],
        sale_date=np.concatenate([books.sales.sale_date, sb.sale_date[picked]]),
        quantity=np.concatenate([books.sales.quantity, sb.quantity[picked]]),
    )
    available = fifo.LotsBatch(
        row=np.zeros(len(books.lots) + len(lots_picked), np.int64),
        lot_id=books.lots.lot_id + [new.lot_id[j] for j in lots_picked],
        sku=books.lots.sku + [new.sku[j] for j in lots_picked],
        received_date=np.concatenate([books.lots.received_date, new.received_date[lots_picked]]),
        quantity=np.concatenate([books.lots.quantity, new.quantity[lots_picked]]),
        unit_cost=np.concatenate([books.lots.unit_cost, new.unit_cost[lots_picked]]),
    )
    errors = recost(sales, available).errors
    own = [e for e in errors if e.row > 0]
    costed = [-e.row - 1 for e in errors if e.row < 0]  # costed sales carry row -(position + 1)
    short = {books.sales.sku[k]: books.sales.sale_id[k] for k in costed}
    own += [
        fifo.RowError(
            int(sb.row[i]), "sale_date", fifo.INSUFFICIENT_STOCK,
            f"costed in date order, this backdated sale leaves the already-costed sale '{short[sb.sku[i]]}' of "
            f"'{sb.sku[i]}' without stock", "sales",
        )
        for i in picked
        if sb.sku[i] in short
    ]  # fmt: skip
    return own


@dataclass(frozen=True, slots=True)
class Changes:
    """Per changed (sale, lot): the change of what the sale takes from the lot (scaled, signed: + takes more)."""

    sale: npt.NDArray[np.int64]
    lot: npt.NDArray[np.int64]
    quantity: npt.NDArray[np.int64]
    amount: npt.NDArray[Any]

    def __len__(self) -> int:
        return len(self.sale)


def changes(books: Books, result: fifo.FifoResult) -> Changes:
    """New slices less posted ones, summed per (sale, lot), exactly (sorted integer keys, no floats)."""
    m = max(len(books.lots), 1)
    keys = np.concatenate([result.slice_sale * m + result.slice_lot, books.posted_sale * m + books.posted_lot])
    qty = np.concatenate([result.slice_quantity.astype(np.int64), -books.posted_quantity])
    amount = np.concatenate([result.slice_amount.astype(object), -books.posted_amount]).astype(object)
    if not len(keys):
        empty = np.zeros(0, np.int64)
        return Changes(empty, empty, empty, np.zeros(0, dtype=object))
    order = np.argsort(keys, kind="stable")
    keys, qty, amount = keys[order], qty[order], amount[order]
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    pair_qty = np.add.reduceat(qty, starts)
    pair_amount = np.add.reduceat(amount, starts)
    changed = (pair_qty != 0) | (pair_amount != 0)
    pair = keys[starts][changed]
    return Changes(pair // m, pair % m, pair_qty[changed], pair_amount[changed])


def execute_repost(session: Session, job: Job) -> dict[str, Any]:
    """Re-cost the job's SKUs and append the adjustments; nothing is written when nothing changed."""
    skus = sorted(job.payload["skus"])
    books = load_books(session, job.tenant_id, skus)
    held = methods.held_methods(session, job.tenant_id, skus)  # share-locked: a switch waits for the repost
    result = recost(books.sales, books.lots, held)
    if result.errors:
        raise ValidationFailed(
            "the backdated entries leave sales without stock when costed in date order; nothing was reposted",
            reason=fifo.INSUFFICIENT_STOCK,
            details=[e.as_dict() for e in result.errors[:1000]],
        )
    diff = changes(books, result)
    summary: dict[str, Any] = {"skus": skus, "cause_job_id": job.payload.get("cause_job_id"), "events": len(diff)}
    if not len(diff):
        return {**summary, "runs": [], "sales_recosted": 0, "cogs_change": "0.00000000"}
    # An event's unit cost: its lot's (FIFO, LIFO: units move at their lot's cost), or under moving average the
    # sale's re-costed unit cost, the pool's average at its date (the unit cost in force for later runs).
    unit_cost = books.lots.unit_cost[diff.lot]
    averaged = np.array([held.get(books.sales.sku[i]) == Method.MOVING_AVERAGE for i in diff.sale.tolist()], bool)
    if averaged.any():
        unit_cost = np.where(averaged, sale_unit_costs(result, len(books.sales))[diff.sale], unit_cost)
    by_run = _write_adjustments(session, job, books, diff, unit_cost)
    per_lot: dict[int, int] = {}
    for lot, quantity in zip(diff.lot.tolist(), diff.quantity.tolist(), strict=True):
        per_lot[lot] = per_lot.get(lot, 0) - quantity
    lot_ids = [books.lots.lot_id[j] for j in per_lot]
    try:
        lots.apply_deltas(
            session, job.tenant_id, [lots.encode_deltas(lot_ids, list(per_lot.values()))], refuse_negative=True
        )
    except lots.NegativeBalance as exc:  # capacity is what live sales and the balance hold: cannot happen
        raise Conflict(str(exc), reason="REPOST_BLOCKED") from exc
    total = sum(int(a) for a in diff.amount.tolist())
    return {
        **summary,
        "runs": sorted(by_run),
        "sales_recosted": len(set(diff.sale.tolist())),
        "cogs_change": format_scaled(total, AMOUNT_SCALE),
        "first_seq": min(r[0] for r in by_run.values()),
        "last_seq": max(r[1] for r in by_run.values()),
    }


def _write_adjustments(
    session: Session, job: Job, books: Books, diff: Changes, unit_cost: npt.NDArray[np.int64]
) -> dict[str, tuple[int, int]]:
    """The COST_ADJUSTMENT events, run by run (in business time within each), and each run's repost_runs row."""
    runs = np.array([books.sale_run[i] for i in diff.sale.tolist()], dtype=object)
    run_ids = sorted(set(runs.tolist()))
    prepared, amounts = [], []
    for run_id in run_ids:
        idx = np.flatnonzero(runs == run_id)
        sale, lot = diff.sale[idx], diff.lot[idx]
        batch = EventBatch(
            EventType.COST_ADJUSTMENT, sku=[books.sales.sku[i] for i in sale.tolist()],
            lot_id=[books.lots.lot_id[j] for j in lot.tolist()], quantity=-diff.quantity[idx],
            unit_cost=unit_cost[idx], amount=-diff.amount[idx], occurred_at=books.sales.sale_date[sale],
            reference=[books.sales.sale_id[i] for i in sale.tolist()],
        )  # fmt: skip
        prepared.append(prepare_batches([batch], job_id=job.id, run_id=run_id, in_time_order=True))
        amounts.append(sum(int(a) for a in diff.amount[idx].tolist()))
    head = lock_head(session, job.tenant_id)
    chained = chain(job.tenant_id, head, itertools.chain.from_iterable(p.chunks() for p in prepared))
    write_chained(session, chained)
    ranges: dict[str, tuple[int, int]] = {}
    seq, now = chained.first, utcnow()
    for run_id, p, amount in zip(run_ids, prepared, amounts, strict=True):
        ranges[run_id] = (seq, seq + p.count - 1)
        session.add(
            RepostRun(
                job_id=job.id, run_id=run_id, tenant_id=job.tenant_id, first_seq=seq, last_seq=seq + p.count - 1,
                amount=to_decimal(amount, AMOUNT_SCALE), posted_at=now,
            )
        )  # fmt: skip
        seq += p.count
    session.flush()
    return ranges


# --- reversing -----------------------------------------------------------------------------------------------


def adjustment_ranges(session: Session, tenant_id: str, run_id: str) -> list[tuple[int, int]]:
    """The seq ranges of the live (not reversed) adjustments reposts made to a run."""
    rows = session.execute(
        select(RepostRun.first_seq, RepostRun.last_seq).where(
            RepostRun.tenant_id == tenant_id, RepostRun.run_id == run_id, RepostRun.reversed_by.is_(None)
        )
    ).all()
    return [(int(a), int(b)) for a, b in rows]


def mark_reversed(session: Session, tenant_id: str, *, run_id: str | None, job_id: str | None, by: str) -> None:
    query = update(RepostRun).where(RepostRun.tenant_id == tenant_id, RepostRun.reversed_by.is_(None))
    if run_id is not None:
        query = query.where(RepostRun.run_id == run_id)
    if job_id is not None:
        query = query.where(RepostRun.job_id == job_id)
    session.execute(query.values(reversed_by=by))


def _ranges_sql(ranges: list[tuple[int, int]]) -> sql.Composable:
    return sql.SQL(" OR ").join(
        sql.SQL("seq BETWEEN {} AND {}").format(sql.Literal(a), sql.Literal(b)) for a, b in ranges
    )


def reverse_repost(session: Session, job: Job) -> dict[str, Any]:
    """Append the reversal of a repost's live adjustments and restore the lot balances they moved."""
    tenant_id, target = job.tenant_id, str(job.payload["reverse_job_id"])
    rows = list(
        session.scalars(
            select(RepostRun).where(RepostRun.tenant_id == tenant_id, RepostRun.job_id == target).with_for_update()
        )
    )
    original = session.get(Job, target)
    if original is None or original.tenant_id != tenant_id or original.kind != JobKind.REPOST:
        raise NotFound(f"repost '{target}' not found")
    check_reversible(session, original, rows)
    live = [r for r in rows if r.reversed_by is None]
    condition = sql.SQL("tenant_id = {t} AND job_id = {j} AND event_type = 'COST_ADJUSTMENT' AND ({ranges})").format(
        t=tenant_id, j=target, ranges=_ranges_sql([(r.first_seq, r.last_seq) for r in live])
    )
    body = canonical.body_sql(
        event_type=sql.Literal(EventType.REVERSAL.value), quantity=sql.SQL("-quantity"), amount=sql.SQL("-amount"),
        job_id=sql.Literal(job.id), reverses_seq=sql.SQL("seq"),
    )  # fmt: skip
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        query = sql.SQL("COPY (SELECT {body} FROM ledger_events WHERE {c} ORDER BY seq) TO STDOUT").format(
            body=body, c=condition
        )
        with cur.copy(query) as copy:
            lines = b"".join(bytes(chunk) for chunk in copy).decode().split("\n")[:-1]
        deltas = cur.execute(
            sql.SQL("SELECT lot_id, -sum(quantity) FROM ledger_events WHERE {c} GROUP BY lot_id").format(c=condition)
        ).fetchall()
    chained = chain(tenant_id, lock_head(session, tenant_id), [lines])
    write_chained(session, chained)
    changed = [(lot, int(q.scaleb(QTY_SCALE))) for lot, q in deltas if q != 0]
    if changed:
        try:
            lots.apply_deltas(
                session, tenant_id, [lots.encode_deltas([c[0] for c in changed], [c[1] for c in changed])],
                refuse_negative=True,
            )  # fmt: skip
        except lots.NegativeBalance as exc:
            raise Conflict(
                f"stock the repost moved was consumed since (lots {', '.join(exc.lot_ids[:10])})",
                reason="ROLLBACK_BLOCKED",
                details=[{"lot_id": lot, "message": "consumed by a later event"} for lot in exc.lot_ids],
            ) from exc
    mark_reversed(session, tenant_id, run_id=None, job_id=target, by=job.id)
    return {
        "reversed_job_id": target,
        "runs": sorted(r.run_id for r in live),
        "events": len(lines),
        "cogs_change": format(-sum((r.amount for r in live), to_decimal(0, AMOUNT_SCALE)), "f"),
        "first_seq": chained.first if lines else None,
        "last_seq": chained.last if lines else None,
    }


def check_reversible(session: Session, original: Job, rows: Sequence[RepostRun]) -> None:
    """A repost may be reversed once, while no later live run sold its SKUs (those were costed on its books)."""
    if original.status != "completed":
        raise Conflict(f"repost '{original.id}' is {original.status}", reason="NOT_ROLLBACKABLE")
    live = [r for r in rows if r.reversed_by is None]
    if rows and not live:
        raise Conflict(f"repost '{original.id}' is already rolled back", reason="ALREADY_ROLLED_BACK")
    if not live:
        raise ValidationFailed(
            f"repost '{original.id}' changed nothing; there is nothing to roll back", reason="NO_DATA"
        )
    later = session.scalars(
        text("""
        SELECT DISTINCT r.id FROM runs r JOIN run_skus s ON s.tenant_id = :t AND s.run_id = r.id
        WHERE r.tenant_id = :t AND r.status = 'completed' AND NOT r.dry_run AND r.completed_seq > :seq
          AND s.sku = ANY(:skus) ORDER BY r.id"""),
        {"t": original.tenant_id, "seq": original.seq, "skus": sorted(original.payload["skus"])},
    ).all()
    if later:
        raise Conflict(
            f"later runs costed the same SKUs on the reposted books: {', '.join(later)}; roll them back first",
            reason="ROLLBACK_BLOCKED",
            details=[{"run_id": rid, "message": "costed the same SKUs after the repost"} for rid in later],
        )


@dataclass(frozen=True, slots=True)
class RunAdjustment:
    """One repost's change to a run, for its adjusting journal entry: COGS change scaled 10^8, when it was posted,
    and the job that reversed it (with when it finished), if any."""

    job_id: str
    posted_at: datetime
    amount: int
    reversed_by: str | None
    reversed_at: datetime | None


def run_adjustments(session: Session, tenant_id: str, run_id: str) -> list[RunAdjustment]:
    rows = session.execute(
        select(RepostRun.job_id, RepostRun.posted_at, RepostRun.amount, RepostRun.reversed_by, Job.finished_at)
        .outerjoin(Job, (Job.id == RepostRun.reversed_by) & (Job.tenant_id == RepostRun.tenant_id))
        .where(RepostRun.tenant_id == tenant_id, RepostRun.run_id == run_id)
        .order_by(RepostRun.posted_at, RepostRun.job_id)
    ).all()
    return [RunAdjustment(j, at, int(amount.scaleb(AMOUNT_SCALE)), by, when) for j, at, amount, by, when in rows]


# --- intake ---------------------------------------------------------------------------------------------------


def get_repost(session: Session, tenant_id: str, job_id: str) -> Job:
    job = session.scalar(select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id))
    if job is None or job.kind != JobKind.REPOST or "reverse_job_id" in job.payload:
        raise NotFound(f"repost '{job_id}' not found")
    return job


def request_rollback(session: Session, *, tenant_id: str, actor: Principal, job_id: str) -> AcceptedJob:
    """Accept the rollback of a repost as a `repost` job with `reverse_job_id`, refusing now what the worker
    would refuse (it checks again under the tenant fence)."""
    original = get_repost(session, tenant_id, job_id)
    if jobs.pending_with(session, tenant_id, JobKind.REPOST, "reverse_job_id", job_id):
        raise Conflict(f"a rollback of repost '{job_id}' is already queued", reason="RUN_IN_PROGRESS")
    rows = session.scalars(select(RepostRun).where(RepostRun.tenant_id == tenant_id, RepostRun.job_id == job_id))
    check_reversible(session, original, list(rows))
    rollback_id = jobs.new_job_id()
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="repost.rollback_requested",
        target=job_id,
        outcome="accepted",
        job_id=rollback_id,
    )
    payload = {"reverse_job_id": job_id, "skus": original.payload["skus"]}
    return jobs.accept_job(
        session, tenant_id=tenant_id, kind=JobKind.REPOST, actor=actor, payload=payload, job_id=rollback_id
    )
