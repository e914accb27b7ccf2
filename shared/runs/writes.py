"""What a checked run writes, in its job's transaction: its ledger events (RECEIPTs of its new lots, ISSUEs of
its allocation slices), per-sale results, the lots it received or consumed (through `shared.ledger.lots`)
and the costing boundary of its SKUs; a dry run writes its per-sale results and allocations only. A failed
run's validation errors are recorded here too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import text
from sqlalchemy.orm import Session

from shared import copytext
from shared.copyio import SMALL_WRITE_ROWS, copy_chunks, copy_into, copy_lines, copy_rows, insert_values
from shared.decimals import AMOUNT_SCALE, COST_SCALE, QTY_SCALE
from shared.jobs.models import Job
from shared.ledger.lots import NewLots, apply_deltas, encode_deltas, insert_lots
from shared.ledger.models import EventType
from shared.ledger.service import (
    Appended,
    EventBatch,
    Prepared,
    appended,
    chain,
    lock_head,
    prepare_batches,
    write_chained,
)
from shared.runs import fifo
from shared.runs.checks import CheckedRun
from shared.runs.models import Run

SALES_COLUMNS = ("run_id", "sale_id", "tenant_id", "sku", "sale_date", "quantity", "cogs")
ERROR_COLUMNS = ("run_id", "position", "tenant_id", "row", "field", "reason", "message", "file")
ALLOCATION_COLUMNS = ("run_id", "position", "tenant_id", "sale_id", "lot_id", "sku", "quantity", "unit_cost", "amount")


def write_run(session: Session, job: Job, run: Run, checked: CheckedRun) -> None:
    """Write a committed run and record its seq range on it."""
    # Two cores, two jobs: Python numbers and hashes the ledger events while PostgreSQL ingests the per-sale
    # rows, so the ledger COPY that follows is a plain transfer.
    receipts, prepared = _ledger_events(job, run, checked)
    head = lock_head(session, run.tenant_id)
    if len(checked.sales) <= SMALL_WRITE_ROWS:
        insert_values(session, [("run_sales", SALES_COLUMNS, _sales_rows(run, checked.sales, checked.result))])
        chained = chain(run.tenant_id, head, prepared.chunks())
    else:
        with copy_into(session, "run_sales", SALES_COLUMNS) as copy:
            for chunk in _sales_text(run, checked.sales, checked.result):
                copy.write(chunk)
            chained = chain(run.tenant_id, head, prepared.chunks())
    write_chained(session, chained)
    written = appended(prepared, chained)
    run.first_seq, run.last_seq = written.first, written.last
    _write_lots(session, job, run, checked, receipts, written)
    _record_costed_skus(session, run, checked.sales)


def write_dry_run(session: Session, run: Run, checked: CheckedRun) -> None:
    """A dry run's per-sale results and allocation slices, which no ledger event carries: a small run's in one
    multi-row INSERT, a larger one's by COPY."""
    sb, lots, result = checked.sales, checked.available, checked.result
    sale_idx, lot_idx = result.slice_sale.tolist(), result.slice_lot.tolist()
    n = len(sale_idx)
    if max(len(sb), n) <= SMALL_WRITE_ROWS:
        slices = list(
            zip(
                [run.id] * n, range(1, n + 1), [run.tenant_id] * n, [sb.sale_id[i] for i in sale_idx],
                [lots.lot_id[i] for i in lot_idx], [sb.sku[i] for i in sale_idx],
                copytext.scaled_column(result.slice_quantity, QTY_SCALE),
                copytext.scaled_column(slice_unit_cost(lots, result), COST_SCALE),
                copytext.scaled_column(result.slice_amount, AMOUNT_SCALE), strict=True,
            )
        )  # fmt: skip
        sales = _sales_rows(run, sb, result)
        insert_values(session, [("run_sales", SALES_COLUMNS, sales), ("run_allocations", ALLOCATION_COLUMNS, slices)])
        return
    copy_chunks(session, "run_sales", SALES_COLUMNS, _sales_text(run, sb, result))
    lines = copytext.join_rows([
        copytext.constant(run.id, n), [str(i) for i in range(1, n + 1)], copytext.constant(run.tenant_id, n),
        copytext.text_column([sb.sale_id[i] for i in sale_idx]),
        copytext.text_column([lots.lot_id[i] for i in lot_idx]),
        copytext.text_column([sb.sku[i] for i in sale_idx]),
        copytext.scaled_column(result.slice_quantity, QTY_SCALE),
        copytext.scaled_column(slice_unit_cost(lots, result), COST_SCALE),
        copytext.scaled_column(result.slice_amount, AMOUNT_SCALE),
    ])  # fmt: skip
    copy_lines(session, "run_allocations", ALLOCATION_COLUMNS, lines)


def record_validation_errors(session: Session, run: Run, errors: list[fifo.RowError]) -> None:
    copy_rows(
        session,
        "run_validation_errors",
        ERROR_COLUMNS,
        (
            (run.id, i, run.tenant_id, e.row, e.field, e.reason, e.message[:1000], e.file)
            for i, e in enumerate(errors, 1)
        ),
    )


def _ledger_events(job: Job, run: Run, checked: CheckedRun) -> tuple[EventBatch, Prepared]:
    """The run's RECEIPT events (its new lots) and ISSUE events (the allocation slices), encoded in
    business-time order."""
    sb, available, result = checked.sales, checked.available, checked.result
    lb = checked.lots.batch if checked.lots else fifo.LotsBatch.empty()
    new_idx = np.flatnonzero(checked.new_lots)
    new_ids = [lb.lot_id[i] for i in new_idx.tolist()]
    new_qty, new_cost = lb.quantity[new_idx], lb.unit_cost[new_idx]
    receipts = EventBatch(
        EventType.RECEIPT, sku=[lb.sku[i] for i in new_idx.tolist()], lot_id=new_ids, quantity=new_qty,
        unit_cost=new_cost, amount=_product(new_qty, new_cost), occurred_at=lb.received_date[new_idx],
        reference=new_ids,
    )  # fmt: skip
    sale_idx, lot_idx = result.slice_sale.tolist(), result.slice_lot.tolist()
    issues = EventBatch(
        EventType.ISSUE, sku=[sb.sku[i] for i in sale_idx], lot_id=[available.lot_id[i] for i in lot_idx],
        quantity=-result.slice_quantity, unit_cost=slice_unit_cost(available, result),
        amount=-result.slice_amount, occurred_at=sb.sale_date[result.slice_sale],
        reference=[sb.sale_id[i] for i in sale_idx],
    )  # fmt: skip
    return receipts, prepare_batches([receipts, issues], job_id=job.id, run_id=run.id, in_time_order=True)


def _write_lots(
    session: Session, job: Job, run: Run, checked: CheckedRun, receipts: EventBatch, written: Appended
) -> None:
    """Receive the run's new lots (remaining = received less what the run consumed) and take the run's
    consumption off the existing lots."""
    n_existing = len(checked.existing)
    consumed = checked.result.lot_consumed
    if len(receipts) and checked.lots is not None:
        new_idx = np.flatnonzero(checked.new_lots)
        parsed = checked.lots
        new_lots = NewLots(
            lot_id=receipts.lot_id, sku=receipts.sku, received_at=receipts.occurred_at,
            original_quantity=parsed.original_quantity[new_idx], received_quantity=receipts.quantity,
            remaining_quantity=receipts.quantity - consumed[n_existing:], unit_price=parsed.unit_price[new_idx],
            freight=parsed.freight[new_idx], receipt_seq=written.seqs[0], source_job_id=job.id,
            source_run_id=run.id,
        )  # fmt: skip
        insert_lots(session, run.tenant_id, new_lots)
    used = np.flatnonzero(consumed[:n_existing])
    if len(used):
        used_ids = [checked.existing.lot_id[i] for i in used.tolist()]
        apply_deltas(session, run.tenant_id, [encode_deltas(used_ids, -consumed[used])])


def _record_costed_skus(session: Session, run: Run, sb: fifo.SalesBatch) -> None:
    """Each SKU the run sold with its latest sale date (run_skus), and the tenant's costing boundary."""
    codes: dict[str, int] = {}
    code = np.array([codes.setdefault(sku, len(codes)) for sku in sb.sku], dtype=np.int64)
    skus = list(codes)
    latest_int = np.full(len(skus), np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(latest_int, code, sb.sale_date.astype("datetime64[us]").view(np.int64))
    latest = latest_int.view("datetime64[us]")
    lines = copytext.join_rows([
        copytext.constant(run.id, len(skus)), copytext.text_column(skus),
        copytext.constant(run.tenant_id, len(skus)), copytext.timestamp_column(latest),
    ])  # fmt: skip
    copy_lines(session, "run_skus", ("run_id", "sku", "tenant_id", "last_sale_date"), lines)
    session.execute(
        text("""
        INSERT INTO costed_skus (tenant_id, sku, last_sale_date)
        SELECT tenant_id, sku, last_sale_date FROM run_skus WHERE tenant_id = :t AND run_id = :r
        ON CONFLICT (tenant_id, sku) DO UPDATE
        SET last_sale_date = GREATEST(costed_skus.last_sale_date, EXCLUDED.last_sale_date)"""),
        {"t": run.tenant_id, "r": run.id},
    )


def _sales_order(sb: fifo.SalesBatch) -> npt.NDArray[np.int64]:
    """Sales sorted by sale_id, so their rows extend both run_sales indexes at their ends instead of at random
    places."""
    # (a NumPy string array would be as wide as the longest id times four bytes per character, per row)
    return np.array(sorted(range(len(sb)), key=sb.sale_id.__getitem__), dtype=np.int64)


def _sales_rows(run: Run, sb: fifo.SalesBatch, result: fifo.FifoResult) -> list[tuple[Any, ...]]:
    """A small run's per-sale rows as values (`insert_values`), in sale_id order."""
    order = _sales_order(sb)
    n = len(order)
    return list(
        zip(
            [run.id] * n, [sb.sale_id[i] for i in order.tolist()], [run.tenant_id] * n,
            [sb.sku[i] for i in order.tolist()], copytext.timestamp_column(sb.sale_date[order]),
            copytext.scaled_column(sb.quantity[order], QTY_SCALE),
            copytext.scaled_column(result.sale_cogs[order], AMOUNT_SCALE), strict=True,
        )
    )  # fmt: skip


def _sales_text(run: Run, sb: fifo.SalesBatch, result: fifo.FifoResult) -> Iterator[str]:
    """The per-sale rows in COPY text, chunk by chunk, in sale_id order."""
    order = _sales_order(sb)
    sale_ids, skus = [sb.sale_id[i] for i in order.tolist()], [sb.sku[i] for i in order.tolist()]
    dates, quantities, cogs = sb.sale_date[order], sb.quantity[order], result.sale_cogs[order]
    for start in range(0, len(sale_ids), 50_000):
        part = slice(start, start + 50_000)
        n = len(sale_ids[part])
        rows = copytext.join_rows([
            copytext.constant(run.id, n), copytext.text_column(sale_ids[part]), copytext.constant(run.tenant_id, n),
            copytext.text_column(skus[part]), copytext.timestamp_column(dates[part]),
            copytext.scaled_column(quantities[part], QTY_SCALE), copytext.scaled_column(cogs[part], AMOUNT_SCALE),
        ])  # fmt: skip
        yield "\n".join(rows) + "\n"


def slice_unit_cost(available: fifo.LotsBatch, result: fifo.FifoResult) -> npt.NDArray[Any]:
    """Each slice's unit cost: its lot's, when the slice is costed at it (FIFO, LIFO); otherwise (moving
    average) its amount / quantity rounded half-up to 10**-4, the pool's average for every slice but the
    rounding remainder of an emptying sale."""
    lot_cost = available.unit_cost[result.slice_lot]
    amount, quantity = result.slice_amount, result.slice_quantity
    if amount.dtype == object:
        exact = [
            c if a == q * c else (2 * a + q) // (2 * q)
            for a, q, c in zip(amount.tolist(), quantity.tolist(), lot_cost.tolist(), strict=True)
        ]
        return np.array(exact, dtype=np.int64)
    at_lot = amount == quantity * lot_cost
    if bool(at_lot.all()):
        return lot_cost
    cost: npt.NDArray[np.int64] = np.where(at_lot, lot_cost, (2 * amount + quantity) // (2 * quantity))
    return cost


def _product(quantity: npt.NDArray[np.int64], unit_cost: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
    """quantity x unit cost, exact: int64 when it provably fits, Python ints otherwise."""
    if len(quantity) and int(np.abs(quantity).max()) * int(np.abs(unit_cost).max()) >= 2**62:
        exact = [int(q) * int(c) for q, c in zip(quantity.tolist(), unit_cost.tolist(), strict=True)]
        return np.array(exact, dtype=object)
    product: npt.NDArray[np.int64] = quantity * unit_cost
    return product
