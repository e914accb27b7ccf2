"""A run's inputs checked against the tenant's state inside its fenced transaction: known SKUs, sales already
costed (DUPLICATE_SALE) or dated before the costing boundary (BACKDATED_SALE), lots that conflict with live
ones, SKUs held to another costing method (VALUATION_METHOD_MISMATCH, shared/runs/methods.py), and the live
lots the run may consume, then the allocation itself by the run's method (INSUFFICIENT_STOCK).

Every check runs even when an earlier one found problems, so one submission reports all of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Row, text
from sqlalchemy.orm import Session

from shared import copytext, costing
from shared.copyio import SMALL_WRITE_ROWS, copy_lines, temp_table
from shared.decimals import COST_SCALE, QTY_SCALE, to_decimal
from shared.errors import BACKDATED_RECEIPT, ValidationFailed
from shared.runs import backdating, fifo, methods, repost
from shared.runs.csvio import ParsedLots, ParsedSales

MAX_REPORTED_ERRORS = 10_000
BoolArray = npt.NDArray[np.bool_]


class RunValidationFailed(ValidationFailed):
    def __init__(self, errors: list[fifo.RowError]) -> None:
        reasons = sorted({e.reason for e in errors})
        super().__init__(
            f"{len(errors)} validation error(s): {', '.join(reasons)}",
            reason=reasons[0] if len(reasons) == 1 else "MULTIPLE",
            details=[e.as_dict() for e in errors[:MAX_REPORTED_ERRORS]],
        )
        self.errors = errors


@dataclass(frozen=True, slots=True)
class CheckedRun:
    """A run that passed every check: its sales, its lots file (if any) and which of those lots are new,
    the tenant's live lots it may consume, everything available to it (those, then its new lots) and the
    allocation."""

    sales: fifo.SalesBatch
    lots: ParsedLots | None
    new_lots: BoolArray
    existing: fifo.LotsBatch
    available: fifo.LotsBatch
    result: fifo.FifoResult
    # repost mode: the SKUs this run backdates (a sale or new lot before the costing boundary), each with the
    # earliest date it backdates them to; the run's handler queues their repost
    repost: dict[str, datetime]


def check_run(
    session: Session,
    tenant_id: str,
    sales: ParsedSales,
    lots: ParsedLots | None,
    method: costing.Method = costing.Method.FIFO,
    *,
    held_to_method: bool = True,
) -> CheckedRun:
    """Check and allocate by `method`; raises RunValidationFailed with every problem, sorted by file and row.
    Without `held_to_method` (a dry run: a preview writes nothing) a SKU held to another method is costed
    by `method` all the same."""
    errors: list[fifo.RowError] = [*sales.errors, *(lots.errors if lots else [])]
    for parsed, file in ((sales, "sales"), (lots, "lots")):
        if parsed is not None and parsed.tenant_ids - {tenant_id}:
            errors.append(
                fifo.RowError(0, "tenant_id", "TENANT_MISMATCH", f"the {file} file names another tenant", file)
            )
    sb = sales.batch
    lb = lots.batch if lots else fifo.LotsBatch.empty()
    state = tenant_state(session, tenant_id, sb, lb)
    repost_mode = state.repost_mode
    errors += check_skus(state, sb, lb)
    sale_errors = check_sales(state, sb)
    if held_to_method:
        errors += methods.mismatches(session, tenant_id, sb, method)
    named, existing = lots_state(session, tenant_id, lots, sorted(set(sb.sku)))
    new_lots, lot_errors = check_lots(named, lots)
    backdated_lots = check_backdated_lots(state, lb, new_lots, inclusive=repost_mode)
    to_repost: dict[str, datetime] = {}
    backdated_skus: set[str] = set()
    if repost_mode:  # backdated sales and lots are accepted and re-costed after the run
        sale_errors = [e for e in sale_errors if e.reason != "BACKDATED_SALE"]
        sold = set(sb.sku)
        cut = {sku: fifo.to_datetime64(d) for sku, d in state.boundary.items() if sku in sold}
        at_or_before = [i for i, sku in enumerate(sb.sku) if sku in cut and sb.sale_date[i] <= cut[sku]]
        backdated_skus = {sb.sku[i] for i in at_or_before if sb.sale_date[i] < cut[sb.sku[i]]}
        to_repost = backdating.earliest(
            {},
            [(sb.sku[i], fifo.from_datetime64(sb.sale_date[i])) for i in at_or_before]
            + [(e.sku, e.at) for e, _ in backdated_lots],
        )
    else:
        lot_errors += [
            fifo.RowError(
                e.row, "received_date", BACKDATED_RECEIPT, backdating.detail(e, d, field="")["message"], "lots"
            )
            for e, d in backdated_lots
        ]
    errors += sale_errors + lot_errors
    available = _concat_lots(existing, _select_lots(lb, new_lots))
    opening = averages = None
    if method is costing.Method.MOVING_AVERAGE:
        opening, averages = (
            methods.opening_values(session, tenant_id, sb),
            methods.pool_averages(session, tenant_id, sb),
        )
    priced = _provisional(available, backdated_skus, sb) if backdated_skus else available
    result = costing.allocate(method, sb, priced, opening=opening, averages=averages)
    # Stock is checked even when other rows are bad, so one submission reports every problem.
    errors += result.errors
    if backdated_skus and not result.errors:
        errors += repost.date_order_errors(session, tenant_id, sb, _select_lots(lb, new_lots), backdated_skus)
    if errors:
        errors.sort(key=lambda e: (e.file != "sales", e.row, e.field))
        raise RunValidationFailed(errors)
    return CheckedRun(sb, lots, new_lots, existing, available, result, to_repost)


def _provisional(available: fifo.LotsBatch, skus: set[str], sb: fifo.SalesBatch) -> fifo.LotsBatch:
    """For a run with backdated sales in repost mode: the SKUs' stock on hand as if all of it had been received
    before the run's first sale. The run's own allocation of them is provisional (later sales already consumed
    what was on hand at a backdated sale's date); the repost queued behind it re-costs them in date order and
    is the one that checks stock by date."""
    first = sb.sale_date.min()
    dates = available.received_date.copy()
    dates[np.array([sku in skus for sku in available.sku], dtype=bool)] = first
    return fifo.LotsBatch(
        row=available.row, lot_id=available.lot_id, sku=available.sku, received_date=dates,
        quantity=available.quantity, unit_cost=available.unit_cost,
    )  # fmt: skip


def check_backdated_lots(
    state: TenantState, lb: fifo.LotsBatch, new_lots: BoolArray, *, inclusive: bool
) -> list[tuple[backdating.Entry, datetime]]:
    """The run's new lots received before (`inclusive`: or at) the costing boundary of their SKU (a lot already
    live is not new)."""
    entries = [
        backdating.Entry(int(lb.row[i]), lb.sku[i], fifo.from_datetime64(lb.received_date[i]))
        for i in np.flatnonzero(new_lots).tolist()
    ]
    return backdating.backdated_against(state.boundary, entries, inclusive=inclusive) if entries else []


@dataclass(frozen=True, slots=True)
class TenantState:
    """What a run's checks read of the tenant, in one round trip: which of the run's SKUs are items, which of
    its sale ids a live run already costed, the costing boundary (latest costed sale date) of its SKUs, sales'
    and lots' alike, and whether backdated entries are reposted."""

    known_skus: frozenset[str]
    costed_sales: frozenset[str]
    boundary: dict[str, datetime]
    repost_mode: bool


def tenant_state(session: Session, tenant_id: str, sb: fifo.SalesBatch, lb: fifo.LotsBatch) -> TenantState:
    """One query (`TenantState`). A small run's sale ids go as an array parameter (`= ANY`); a large run's
    through a scratch table COPY fills, which the planner can hash-join against run_sales."""
    skus = sorted(set(sb.sku) | set(lb.sku))
    live = "r.status = 'completed' AND NOT r.dry_run"
    params: dict[str, object] = {"t": tenant_id, "skus": skus}
    if len(sb) <= SMALL_WRITE_ROWS:
        params["ids"] = list(sb.sale_id)
        costed = f"""SELECT 'sale', s.sale_id, NULL::timestamptz FROM run_sales s JOIN runs r ON r.id = s.run_id
            WHERE s.tenant_id = :t AND s.sale_id = ANY(:ids) AND {live}"""
    else:
        temp_table(session, "tmp_run_sales", "sale_id text")
        copy_lines(session, "tmp_run_sales", ("sale_id",), copytext.text_column(sb.sale_id))
        costed = f"""SELECT 'sale', s.sale_id, NULL::timestamptz FROM run_sales s JOIN runs r ON r.id = s.run_id
            JOIN tmp_run_sales t ON t.sale_id = s.sale_id WHERE s.tenant_id = :t AND {live}"""
    rows = session.execute(
        text(f"""
        SELECT 'item', sku, NULL::timestamptz FROM items
            WHERE tenant_id = :t AND deleted_at IS NULL AND sku = ANY(:skus)
        UNION ALL {costed}
        UNION ALL SELECT 'cut', sku, last_sale_date FROM costed_skus
            WHERE tenant_id = :t AND sku = ANY(:skus) AND last_sale_date IS NOT NULL
        UNION ALL SELECT 'mode', backdated_entries, NULL FROM tenants WHERE id = :t"""),
        params,
    ).all()
    known, sales, boundary, mode = set(), set(), {}, None
    for kind, key, at in rows:
        if kind == "item":
            known.add(key)
        elif kind == "sale":
            sales.add(key)
        elif kind == "cut":
            boundary[key] = at
        else:
            mode = key
    return TenantState(frozenset(known), frozenset(sales), boundary, mode == "repost")


def _row_errors(rows: Iterator[tuple[int, str]], field: str, reason: str, file: str) -> list[fifo.RowError]:
    return [fifo.RowError(row=row, field=field, reason=reason, message=message, file=file) for row, message in rows]


def check_skus(state: TenantState, sb: fifo.SalesBatch, lb: fifo.LotsBatch) -> list[fifo.RowError]:
    known = state.known_skus
    if known >= set(sb.sku) | set(lb.sku):
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


def check_sales(state: TenantState, sb: fifo.SalesBatch) -> list[fifo.RowError]:
    """Sales a live run already costed, and sales dated before the latest costed sale of their SKU."""
    costed = state.costed_sales
    last_dates = state.boundary
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


def lots_state(
    session: Session, tenant_id: str, lots: ParsedLots | None, skus: list[str]
) -> tuple[dict[str, Row[Any]], fifo.LotsBatch]:
    """In one query: the live lots the run's lots file names (by lot_id, for `check_lots`), and the tenant's
    live lots with stock of the sold SKUs, in FIFO order (what the run may consume)."""
    ids = list(lots.batch.lot_id) if lots is not None else []
    rows = session.execute(
        text("""
        SELECT lot_id, sku, received_at, remaining_quantity, unit_cost, original_quantity, received_quantity,
               unit_price, freight_cost_per_unit, lot_id = ANY(:ids) AS named,
               remaining_quantity > 0 AND sku = ANY(:skus) AS on_hand
        FROM lots
        WHERE tenant_id = :t AND status = 'live'
          AND (lot_id = ANY(:ids) OR (remaining_quantity > 0 AND sku = ANY(:skus)))
        ORDER BY sku, received_at, lot_id"""),
        {"t": tenant_id, "ids": ids, "skus": skus},
    ).all()
    named = {r.lot_id: r for r in rows if r.named}
    stock = [r for r in rows if r.on_hand]
    existing = fifo.LotsBatch(
        row=np.zeros(len(stock), np.int64),
        lot_id=[r[0] for r in stock],
        sku=[r[1] for r in stock],
        received_date=np.array([fifo.to_datetime64(r[2]) for r in stock], dtype="datetime64[us]"),
        quantity=np.array([int(r[3].scaleb(QTY_SCALE)) for r in stock], dtype=np.int64),
        unit_cost=np.array([int(r[4].scaleb(COST_SCALE)) for r in stock], dtype=np.int64),
    )
    return named, existing


def check_lots(known: dict[str, Row[Any]], lots: ParsedLots | None) -> tuple[BoolArray, list[fifo.RowError]]:
    """Which input lots are new (`known`: the live lots the file names, from `lots_state`). A lot_id already
    live with identical values is the same lot (not received twice); with other values it is a LOT_CONFLICT;
    a reversed lot is received anew."""
    if lots is None or not len(lots.batch):
        return np.ones(0, dtype=bool), []
    lb = lots.batch
    new = np.ones(len(lb), dtype=bool)
    errors = []
    for i, lot_id in enumerate(lb.lot_id):
        lot = known.get(lot_id)
        if lot is None:
            continue
        same = (
            lot.sku == lb.sku[i]
            and fifo.to_datetime64(lot.received_at) == lb.received_date[i]
            and lot.original_quantity == to_decimal(int(lots.original_quantity[i]), QTY_SCALE)
            and lot.received_quantity == to_decimal(int(lb.quantity[i]), QTY_SCALE)
            and lot.unit_price == to_decimal(int(lots.unit_price[i]), COST_SCALE)
            and lot.freight_cost_per_unit == to_decimal(int(lots.freight[i]), COST_SCALE)
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


def _select_lots(lb: fifo.LotsBatch, mask: BoolArray) -> fifo.LotsBatch:
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
