"""Executing COGS runs and rollbacks inside the tenant's fenced transaction.

A run parses its stored inputs, checks them against the tenant's ledger (known SKUs, costed sales, lots),
allocates with the FIFO engine and writes lots, ledger events and per-sale results in one transaction. Any
problem fails the run with every validation error recorded, and nothing else written.
"""

from __future__ import annotations

import io
import json
import queue
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import numpy as np
from psycopg import sql
from psycopg.abc import Buffer
from sqlalchemy import String, func, literal, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from shared import copytext, db
from shared.base import utcnow
from shared.copyio import copy_chunks, copy_into, copy_lines, copy_rows, temp_table
from shared.errors import Conflict, DomainError, ValidationFailed
from shared.jobs import service as jobs
from shared.jobs.handlers import register
from shared.jobs.models import Job
from shared.ledger.models import Lot
from shared.ledger.service import (
    Appended,
    Chained,
    EventBatch,
    Head,
    Prepared,
    appended,
    chain,
    lock_head,
    prepare_batches,
    write_chained,
    write_streamed,
)
from shared.runs import csvio, fifo
from shared.runs import service as runs
from shared.runs.decimals import AMOUNT_SCALE, COST_SCALE, QTY_SCALE, to_decimal
from shared.runs.models import Run

MAX_REPORTED_ERRORS = 10_000


class RunValidationFailed(ValidationFailed):
    def __init__(self, errors: list[fifo.RowError]) -> None:
        reasons = sorted({e.reason for e in errors})
        super().__init__(
            f"{len(errors)} validation error(s): {', '.join(reasons)}",
            reason=reasons[0] if len(reasons) == 1 else "MULTIPLE",
            details=[e.as_dict() for e in errors[:MAX_REPORTED_ERRORS]],
        )
        self.errors = errors


def _run_of(session: Session, job: Job) -> Run:
    run = session.scalar(select(Run).where(Run.job_id == job.id, Run.tenant_id == job.tenant_id))
    assert run is not None, f"job {job.id} has no run"
    return run


def _parse(session: Session, job: Job, name: str, fmt: str) -> Any:
    blob = jobs.read_blob(session, job.id, name) or b""
    if fmt == "csv":
        parser = csvio.parse_sales_csv if name == "sales" else csvio.parse_lots_csv
        return parser(io.BytesIO(blob))
    records = json.loads(blob)
    return csvio.sales_from_records(records) if name == "sales" else csvio.lots_from_records(records)


def _row_errors(rows: Iterator[tuple[int, str]], field: str, reason: str, file: str) -> list[fifo.RowError]:
    return [fifo.RowError(row=row, field=field, reason=reason, message=message, file=file) for row, message in rows]


@register("cogs_run")
class CogsRun:
    def status_changed(self, session: Session, job: Job, error: DomainError | None = None) -> None:
        run = _run_of(session, job)
        now = utcnow()
        if job.status == "running":
            run.status, run.started_at = "running", run.started_at or now
        elif job.status == "queued":
            run.status = "queued"
        elif job.status == "failed":
            run.status, run.finished_at, run.error = "failed", now, job.error
            errors = error.errors if isinstance(error, RunValidationFailed) else []
            run.validation_errors_count = len(errors)
            if errors:
                copy_rows(
                    session,
                    "run_validation_errors",
                    ("run_id", "position", "tenant_id", "row", "field", "reason", "message", "file"),
                    (
                        (run.id, i, run.tenant_id, e.row, e.field, e.reason, e.message[:1000], e.file)
                        for i, e in enumerate(errors, 1)
                    ),
                )

    def execute(self, session: Session, job: Job) -> dict[str, Any]:
        run = _run_of(session, job)
        tenant_id = job.tenant_id
        inputs = job.payload["inputs"]
        sales = _parse(session, job, "sales", inputs["sales"])
        lots = _parse(session, job, "lots", inputs["lots"]) if "lots" in inputs else None
        errors: list[fifo.RowError] = [*sales.errors, *(lots.errors if lots else [])]
        for parsed, file in ((sales, "sales"), (lots, "lots")):
            if parsed is not None and parsed.tenant_ids - {tenant_id}:
                errors.append(
                    fifo.RowError(0, "tenant_id", "TENANT_MISMATCH", f"the {file} file names another tenant", file)
                )
        sb: fifo.SalesBatch = sales.batch
        lb: fifo.LotsBatch = lots.batch if lots else fifo.LotsBatch.empty()
        run.sales_count, run.lots_count = len(sb), len(lb)

        errors += self._check_skus(session, tenant_id, sb, lb)
        errors += self._check_sales(session, tenant_id, sb)
        new_lot_mask, lot_errors = self._check_lots(session, tenant_id, lb, lots)
        errors += lot_errors
        existing = self._live_lots(session, tenant_id, sorted(set(sb.sku)))
        available = _concat_lots(existing, _select_lots(lb, new_lot_mask))
        result = fifo.allocate(sb, available)
        # Stock is checked even when other rows are bad, so one submission reports every problem.
        errors += result.errors
        if errors:
            errors.sort(key=lambda e: (e.file != "sales", e.row, e.field))
            raise RunValidationFailed(errors)

        run.total_quantity = to_decimal(result.total_quantity, QTY_SCALE)
        run.total_cogs = to_decimal(result.total_cogs, AMOUNT_SCALE)
        if run.dry_run:
            copy_chunks(session, "run_sales", SALES_COLUMNS, _sales_text(run, sb, result))
            self._write_dry_allocations(session, run, sb, available, result)
            run.status = "validated"
        else:
            # Two cores, two jobs: Python numbers and hashes the ledger events while PostgreSQL ingests the
            # per-sale rows, so the ledger COPY that follows is a plain transfer.
            receipts, prepared = self._ledger_events(job, run, sb, lots, new_lot_mask, available, result)
            head = lock_head(session, tenant_id)
            with copy_into(session, "run_sales", SALES_COLUMNS) as copy:
                for chunk in _sales_text(run, sb, result):
                    copy.write(chunk)
                chained = chain(tenant_id, head, prepared.chunks())
            write_chained(session, chained)
            written = appended(prepared, chained)
            run.first_seq, run.last_seq = written.first, written.last
            self._write_lots(session, job, run, lots, new_lot_mask, existing, result, receipts, written)
            self._record_costed_skus(session, run, sb)
            run.status = "completed"
            run.completed_seq = job.seq
        run.finished_at = utcnow()
        run.error = None
        return {
            "run_id": run.id,
            "status": run.status,
            "sales": len(sb),
            "total_cogs": format(run.total_cogs, "f"),
            "total_quantity": format(run.total_quantity, "f"),
        }

    # --- checks against the tenant's state ---------------------------------------------------------

    def _check_skus(
        self, session: Session, tenant_id: str, sb: fifo.SalesBatch, lb: fifo.LotsBatch
    ) -> list[fifo.RowError]:
        skus = sorted(set(sb.sku) | set(lb.sku))
        known = set(
            session.scalars(
                text("SELECT sku FROM items WHERE tenant_id = :t AND deleted_at IS NULL AND sku = ANY(:skus)"),
                {"t": tenant_id, "skus": skus},
            )
        )
        if len(known) == len(skus):
            return []
        out: list[fifo.RowError] = []
        for batch, file in ((sb, "sales"), (lb, "lots")):
            out += _row_errors(
                (
                    (int(batch.row[i]), f"SKU '{sku}' is not an item of this tenant")
                    for i, sku in enumerate(batch.sku)
                    if sku not in known
                ),
                "sku",
                "UNKNOWN_SKU",
                file,
            )
        return out

    def _check_sales(self, session: Session, tenant_id: str, sb: fifo.SalesBatch) -> list[fifo.RowError]:
        temp_table(session, "tmp_run_sales", "sale_id text, sku text")
        lines = copytext.join_rows([copytext.text_column(sb.sale_id), copytext.text_column(sb.sku)])
        copy_lines(session, "tmp_run_sales", ("sale_id", "sku"), lines)
        live = "r.status = 'completed' AND NOT r.dry_run"
        costed = set(
            session.scalars(
                text(f"""
            SELECT s.sale_id FROM run_sales s JOIN runs r ON r.id = s.run_id
            JOIN tmp_run_sales t ON t.sale_id = s.sale_id
            WHERE s.tenant_id = :t AND {live}"""),
                {"t": tenant_id},
            )
        )
        last_dates: dict[str, datetime] = {
            row[0]: row[1]
            for row in session.execute(
                text("""
            SELECT sku, last_sale_date FROM costed_skus
            WHERE tenant_id = :t AND sku IN (SELECT DISTINCT sku FROM tmp_run_sales)"""),
                {"t": tenant_id},
            ).all()
        }
        out = _row_errors(
            (
                (int(sb.row[i]), f"sale '{sid}' was already costed by a live run")
                for i, sid in enumerate(sb.sale_id)
                if sid in costed
            ),
            "sale_id",
            "DUPLICATE_SALE",
            "sales",
        )
        if last_dates:
            cutoff = {sku: fifo.to_datetime64(d) for sku, d in last_dates.items()}
            out += _row_errors(
                (
                    (
                        int(sb.row[i]),
                        f"sale of '{sku}' is dated before its latest costed sale ({last_dates[sku].isoformat()})",
                    )
                    for i, sku in enumerate(sb.sku)
                    if sku in cutoff and sb.sale_date[i] < cutoff[sku]
                ),
                "sale_date",
                "BACKDATED_SALE",
                "sales",
            )
        return out

    def _check_lots(
        self, session: Session, tenant_id: str, lb: fifo.LotsBatch, parsed: Any
    ) -> tuple[np.ndarray, list[fifo.RowError]]:
        """Which input lots are new. A lot_id already live with identical values is the same lot (not
        received twice); with other values it is a LOT_CONFLICT; a reversed lot is received anew."""
        new = np.ones(len(lb), dtype=bool)
        if not len(lb):
            return new, []
        known = {
            lot.lot_id: lot
            for lot in session.scalars(
                select(Lot).where(
                    Lot.tenant_id == tenant_id,
                    Lot.lot_id == func.any(literal(list(lb.lot_id), ARRAY(String))),
                    Lot.status == "live",
                )
            )
        }
        errors = []
        for i, lot_id in enumerate(lb.lot_id):
            lot = known.get(lot_id)
            if lot is None:
                continue
            same = (
                lot.sku == lb.sku[i]
                and fifo.to_datetime64(lot.received_at) == lb.received_date[i]
                and lot.original_quantity == to_decimal(int(parsed.original_quantity[i]), QTY_SCALE)
                and lot.received_quantity == to_decimal(int(lb.quantity[i]), QTY_SCALE)
                and lot.unit_price == to_decimal(int(parsed.unit_price[i]), COST_SCALE)
                and lot.freight_cost_per_unit == to_decimal(int(parsed.freight[i]), COST_SCALE)
            )
            new[i] = False
            if not same:
                errors.append(
                    fifo.RowError(
                        int(lb.row[i]),
                        "lot_id",
                        "LOT_CONFLICT",
                        f"lot '{lot_id}' already exists with different values",
                        "lots",
                    )
                )
        return new, errors

    def _live_lots(self, session: Session, tenant_id: str, skus: list[str]) -> fifo.LotsBatch:
        rows = session.execute(
            text("""
            SELECT lot_id, sku, received_at, remaining_quantity, unit_cost FROM lots
            WHERE tenant_id = :t AND status = 'live' AND remaining_quantity > 0 AND sku = ANY(:skus)
            ORDER BY sku, received_at, lot_id"""),
            {"t": tenant_id, "skus": skus},
        ).all()
        return fifo.LotsBatch(
            row=np.zeros(len(rows), np.int64),
            lot_id=[r[0] for r in rows],
            sku=[r[1] for r in rows],
            received_date=np.array([fifo.to_datetime64(r[2]) for r in rows], dtype="datetime64[us]"),
            quantity=np.array([int(r[3].scaleb(QTY_SCALE)) for r in rows], dtype=np.int64),
            unit_cost=np.array([int(r[4].scaleb(COST_SCALE)) for r in rows], dtype=np.int64),
        )

    # --- writes ----------------------------------------------------------------------------------------

    def _record_costed_skus(self, session: Session, run: Run, sb: fifo.SalesBatch) -> None:
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

    def _write_dry_allocations(
        self, session: Session, run: Run, sb: fifo.SalesBatch, lots: fifo.LotsBatch, result: fifo.FifoResult
    ) -> None:
        sale_idx, lot_idx = result.slice_sale.tolist(), result.slice_lot.tolist()
        n = len(sale_idx)
        lines = copytext.join_rows([
            copytext.constant(run.id, n), [str(i) for i in range(1, n + 1)], copytext.constant(run.tenant_id, n),
            copytext.text_column([sb.sale_id[i] for i in sale_idx]),
            copytext.text_column([lots.lot_id[i] for i in lot_idx]),
            copytext.text_column([sb.sku[i] for i in sale_idx]),
            copytext.scaled_column(result.slice_quantity, QTY_SCALE),
            copytext.scaled_column(lots.unit_cost[result.slice_lot], COST_SCALE),
            copytext.scaled_column(result.slice_amount, AMOUNT_SCALE),
        ])  # fmt: skip
        copy_lines(
            session, "run_allocations",
            ("run_id", "position", "tenant_id", "sale_id", "lot_id", "sku", "quantity", "unit_cost", "amount"),
            lines,
        )  # fmt: skip

    def _ledger_events(
        self, job: Job, run: Run, sb: fifo.SalesBatch, parsed_lots: Any, new_mask: np.ndarray,
        available: fifo.LotsBatch, result: fifo.FifoResult,
    ) -> tuple[EventBatch, Prepared]:  # fmt: skip
        """The run's RECEIPT events (its new lots) and ISSUE events (the allocation slices), encoded in
        business-time order."""
        lb: fifo.LotsBatch = parsed_lots.batch if parsed_lots else fifo.LotsBatch.empty()
        new_idx = np.flatnonzero(new_mask)
        new_ids = [lb.lot_id[i] for i in new_idx.tolist()]
        new_qty, new_cost = lb.quantity[new_idx], lb.unit_cost[new_idx]
        receipts = EventBatch(
            "RECEIPT", sku=[lb.sku[i] for i in new_idx.tolist()], lot_id=new_ids, quantity=new_qty,
            unit_cost=new_cost, amount=_product(new_qty, new_cost), occurred_at=lb.received_date[new_idx],
            reference=new_ids,
        )  # fmt: skip
        sale_idx, lot_idx = result.slice_sale.tolist(), result.slice_lot.tolist()
        issues = EventBatch(
            "ISSUE", sku=[sb.sku[i] for i in sale_idx], lot_id=[available.lot_id[i] for i in lot_idx],
            quantity=-result.slice_quantity, unit_cost=available.unit_cost[result.slice_lot],
            amount=-result.slice_amount, occurred_at=sb.sale_date[result.slice_sale],
            reference=[sb.sale_id[i] for i in sale_idx],
        )  # fmt: skip
        return receipts, prepare_batches([receipts, issues], job_id=job.id, run_id=run.id, in_time_order=True)

    def _write_lots(
        self, session: Session, job: Job, run: Run, parsed_lots: Any, new_mask: np.ndarray,
        existing: fifo.LotsBatch, result: fifo.FifoResult, receipts: EventBatch, written: Appended,
    ) -> None:  # fmt: skip
        """Receive the run's new lots (remaining = received less what the run consumed) and take the run's
        consumption off the existing lots."""
        tenant_id = run.tenant_id
        n_existing = len(existing)
        new_idx = np.flatnonzero(new_mask)
        new_ids, new_qty, new_cost = receipts.lot_id, receipts.quantity, receipts.unit_cost

        consumed = result.lot_consumed
        if len(new_idx):
            # A new lot either never existed or was reversed by a rollback; a reversed lot's row is derived
            # state that receiving it anew replaces whole, so it goes and the lot is COPYed like the others.
            session.execute(
                text("DELETE FROM lots WHERE tenant_id = :t AND status = 'reversed' AND lot_id = ANY(:ids)"),
                {"t": tenant_id, "ids": new_ids},
            )
            n = len(new_idx)
            lines = copytext.join_rows([
                copytext.constant(tenant_id, n), copytext.text_column(new_ids), copytext.text_column(receipts.sku),
                copytext.timestamp_column(receipts.occurred_at),
                copytext.scaled_column(parsed_lots.original_quantity[new_idx], QTY_SCALE),
                copytext.scaled_column(new_qty, QTY_SCALE),
                copytext.scaled_column(parsed_lots.unit_price[new_idx], COST_SCALE),
                copytext.scaled_column(parsed_lots.freight[new_idx], COST_SCALE),
                copytext.scaled_column(new_cost, COST_SCALE),
                copytext.scaled_column(new_qty - consumed[n_existing:], QTY_SCALE),
                copytext.constant(job.id, n), copytext.constant(run.id, n), copytext.int_column(written.seqs[0]),
            ])  # fmt: skip
            copy_lines(session, "lots", ("tenant_id", "lot_id", "sku", "received_at", "original_quantity",
                       "received_quantity", "unit_price", "freight_cost_per_unit", "unit_cost", "remaining_quantity",
                       "source_job_id", "source_run_id", "receipt_seq"), lines)  # fmt: skip
        used = np.flatnonzero(consumed[:n_existing])
        if len(used):
            temp_table(session, "tmp_lot_use", "lot_id text, quantity numeric")
            lines = copytext.join_rows(
                [
                    copytext.text_column([existing.lot_id[i] for i in used.tolist()]),
                    copytext.scaled_column(consumed[used], QTY_SCALE),
                ]
            )
            copy_lines(session, "tmp_lot_use", ("lot_id", "quantity"), lines)
            session.execute(
                text("""
                UPDATE lots SET remaining_quantity = lots.remaining_quantity - u.quantity
                FROM tmp_lot_use u WHERE lots.tenant_id = :t AND lots.lot_id = u.lot_id"""),
                {"t": tenant_id},
            )


SALES_COLUMNS = ("run_id", "sale_id", "tenant_id", "sku", "sale_date", "quantity", "cogs")


def _sales_text(run: Run, sb: fifo.SalesBatch, result: fifo.FifoResult) -> Iterator[str]:
    """The per-sale rows in COPY text, chunk by chunk, sorted by sale_id so they extend both run_sales
    indexes at their ends instead of at random places."""
    # (a NumPy string array would be as wide as the longest id times four bytes per character, per row)
    order = np.array(sorted(range(len(sb)), key=sb.sale_id.__getitem__), dtype=np.int64)
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


def _product(quantity: np.ndarray, unit_cost: np.ndarray) -> np.ndarray:
    """quantity x unit cost, exact: int64 when it provably fits, Python ints otherwise."""
    if len(quantity) and int(np.abs(quantity).max()) * int(np.abs(unit_cost).max()) >= 2**62:
        exact = [int(q) * int(c) for q, c in zip(quantity.tolist(), unit_cost.tolist(), strict=True)]
        return np.array(exact, dtype=object)
    product: np.ndarray = quantity * unit_cost
    return product


def _select_lots(lb: fifo.LotsBatch, mask: np.ndarray) -> fifo.LotsBatch:
    idx = np.flatnonzero(mask)
    return fifo.LotsBatch(
        row=lb.row[idx],
        lot_id=[lb.lot_id[i] for i in idx.tolist()],
        sku=[lb.sku[i] for i in idx.tolist()],
        received_date=lb.received_date[idx],
        quantity=lb.quantity[idx],
        unit_cost=lb.unit_cost[idx],
    )


def _concat_lots(a: fifo.LotsBatch, b: fifo.LotsBatch) -> fifo.LotsBatch:
    return fifo.LotsBatch(
        row=np.concatenate([a.row, b.row]),
        lot_id=a.lot_id + b.lot_id,
        sku=a.sku + b.sku,
        received_date=np.concatenate([a.received_date, b.received_date]),
        quantity=np.concatenate([a.quantity, b.quantity]),
        unit_cost=np.concatenate([a.unit_cost, b.unit_cost]),
    )


@register("rollback")
class Rollback:
    def status_changed(self, session: Session, job: Job, error: DomainError | None = None) -> None:
        """A rollback job has no domain row of its own; the runs it reverses change in `execute`."""

    def execute(self, session: Session, job: Job) -> dict[str, Any]:
        run = runs.get_run(session, job.tenant_id, job.payload["run_id"])
        chosen = runs.rollback_set(session, run, cascade=bool(job.payload.get("cascade")))
        for target in chosen:
            reverse_run(session, job, target)
        return {"run_id": run.id, "rolled_back": [r.id for r in chosen]}


def reverse_run(session: Session, job: Job, run: Run) -> None:
    """Append the reversal of every ISSUE and RECEIPT of the run (in the run's own order, which is business
    time: the reversals then extend the time index in one forward sweep), restore lot balances and
    recompute the costing boundary of the run's SKUs.

    PostgreSQL renders the reversals' bodies (negated, in COPY text form) and the per-lot deltas; Python
    only numbers and chains them. The run's events are committed and never change, so two other connections
    read them: one streams the bodies to a thread that chains them after the head this transaction holds
    locked, and this transaction COPYs each block as soon as it is chained; the other sums the per-lot deltas
    meanwhile, and this transaction restores the lots from them after the COPY (a lot that a later event
    consumed blocks the rollback, and the whole transaction is rolled back)."""
    blocks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    params = {"t": run.tenant_id, "r": run.id}
    seqs = _seq_range(run)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="asora-reversal") as pool:
        head = lock_head(session, run.tenant_id)
        # plain values only: the ORM objects belong to this thread's session
        reading = pool.submit(_reversal_events, head, job.id, run.id, run.tenant_id, seqs, blocks.put)
        summing = pool.submit(_lot_deltas, run.id, run.tenant_id, seqs)
        write_streamed(session, iter(blocks.get, None), reading.result)
        temp_table(session, "tmp_reversal", "lot_id text PRIMARY KEY, delta numeric, received boolean")
        copy_chunks(session, "tmp_reversal", ("lot_id", "delta", "received"), [summing.result()])
    negative = session.scalars(
        text("""
        SELECT lots.lot_id FROM lots JOIN tmp_reversal d ON lots.lot_id = d.lot_id
        WHERE lots.tenant_id = :t AND lots.remaining_quantity + d.delta < 0 ORDER BY lots.lot_id LIMIT 100"""),
        params,
    ).all()
    if negative:
        raise Conflict(
            f"stock received by run '{run.id}' was consumed by later ledger events (lots {', '.join(negative[:10])})",
            reason="ROLLBACK_BLOCKED",
            details=[{"lot_id": lot, "message": "consumed by a later event"} for lot in negative],
        )
    session.execute(
        text("""
        UPDATE lots SET remaining_quantity = lots.remaining_quantity + d.delta,
                        status = CASE WHEN d.received THEN 'reversed' ELSE lots.status END
        FROM tmp_reversal d WHERE lots.tenant_id = :t AND lots.lot_id = d.lot_id"""),
        params,
    )
    session.execute(text("DROP TABLE tmp_reversal"))  # a cascade reverses several runs in one transaction
    run.status = "rolled_back"
    run.rolled_back_by = job.id
    session.flush()
    # The run's sales are no longer costed: recompute the BACKDATED_SALE boundary of its SKUs.
    session.execute(
        text("""
        DELETE FROM costed_skus WHERE tenant_id = :t
          AND sku IN (SELECT sku FROM run_skus WHERE tenant_id = :t AND run_id = :r)"""),
        params,
    )
    session.execute(
        text("""
        INSERT INTO costed_skus (tenant_id, sku, last_sale_date)
        SELECT s.tenant_id, s.sku, max(s.last_sale_date) FROM run_skus s JOIN runs r ON r.id = s.run_id
        WHERE s.tenant_id = :t AND r.status = 'completed' AND NOT r.dry_run
          AND s.sku IN (SELECT sku FROM run_skus WHERE tenant_id = :t AND run_id = :r)
        GROUP BY s.tenant_id, s.sku"""),
        params,
    )


def _seq_range(run: Run) -> str:
    """A condition on the run's seq range, so PostgreSQL reads its events along the primary key."""
    if run.first_seq is None or run.last_seq is None:
        return ""
    return f"AND seq BETWEEN {int(run.first_seq)} AND {int(run.last_seq)}"


def _lot_deltas(run_id: str, tenant_id: str, seq_range: str) -> str:
    """Per lot the run touched: what its reversal adds to the balance, and whether the run received it, as
    COPY text; read on a connection of its own (the run's events are committed and never change)."""
    query = sql.SQL("""
        COPY (SELECT lot_id, -sum(quantity), bool_or(event_type = 'RECEIPT') FROM ledger_events
              WHERE tenant_id = {t} AND run_id = {run} AND event_type IN ('ISSUE', 'RECEIPT') {seqs}
              GROUP BY lot_id) TO STDOUT""").format(run=run_id, t=tenant_id, seqs=sql.SQL(seq_range))
    with _copy_out(tenant_id, query) as copy:
        return b"".join(bytes(chunk) for chunk in copy).decode()


@contextmanager
def _copy_out(tenant_id: str, query: sql.Composable) -> Iterator[Iterable[Buffer]]:
    """A COPY TO on a connection of its own, in the tenant's scope."""
    with db.unit_of_work(tenant_id) as reader:
        raw = reader.connection().connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur, cur.copy(query) as copy:
            yield copy


def _reversal_events(
    head: Head, job_id: str, run_id: str, tenant_id: str, seq_range: str, emit: Callable[[bytes | None], None]
) -> Chained:
    """The run's reversal events, in seq order, read on a connection of its own and chained after `head`;
    each block of COPY data goes to `emit` as it is made, and None after the last (also on failure)."""
    query = sql.SQL("""
        COPY (SELECT 'REVERSAL', sku, lot_id, bin_id, -quantity, unit_cost, -amount,
                     to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), {job}, {run},
                     reference, seq
              FROM ledger_events
              WHERE tenant_id = {t} AND run_id = {run} AND event_type IN ('ISSUE', 'RECEIPT') {seqs}
              ORDER BY seq) TO STDOUT""").format(job=job_id, run=run_id, t=tenant_id, seqs=sql.SQL(seq_range))
    try:
        with _copy_out(tenant_id, query) as copy:
            return chain(tenant_id, head, _line_blocks(copy), emit)
    finally:
        emit(None)


def _line_blocks(copy: Iterable[Buffer], size: int = 20_000) -> Iterator[list[str]]:
    """COPY TO output (a message per row) as lists of `size` lines without their line ends, as it arrives."""
    rows: list[bytes] = []
    for message in copy:
        rows.append(bytes(message))
        if len(rows) == size:
            yield b"".join(rows).decode().splitlines()
            rows.clear()
    if rows:
        yield b"".join(rows).decode().splitlines()
