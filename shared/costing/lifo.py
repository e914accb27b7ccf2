"""LIFO: each sale takes units from the most recently received lot of its SKU that still holds stock among
the lots received at or before its date (ties in received date broken by lot id, as FIFO orders them).

Lots and sales are ordered exactly as by FIFO (``shared.costing.common``), and the stock check is the same
cumulative rule, so a file short of stock fails with the same errors under every method.

The engine walks the SKU's lots in order, each followed by its *segment*: the sales after it and before
the SKU's next lot. A segment takes units off the top of the stack of layers (lots with stock left). In
the usual case the top layer alone covers the whole segment, and one comparison settles every sale of it;
only a segment that reaches below the top layer walks its sales one by one. So the Python loop runs once
per lot, not once per sale, and slices are built in columns. Slices are ordered by (SKU, sale order) and,
within a sale, in the order they were taken (newest lot first). Amounts are exact: quantity x the lot's
unit cost, scaled 10**8 like FIFO's.
"""

from __future__ import annotations

import numpy as np

from shared.costing.batches import FifoResult, LotsBatch, SalesBatch, _check_batches, _failed
from shared.costing.common import (
    by_sku,
    micros,
    reference_shortages,
    result_of,
    segment_demand,
    segments,
    sums_by_run,
    times,
)
from shared.costing.fifo import opening


def allocate(sales: SalesBatch, lots: LotsBatch) -> FifoResult:
    """Allocate sales to lots LIFO. Inputs too large for int64 go to ``reference_allocate``."""
    o = opening(sales, lots, reference_allocate)
    if isinstance(o, FifoResult):
        return o
    n, m = len(sales.sale_id), len(lots.lot_id)

    segment = segments(o)
    seg_demand = segment_demand(segment, o.sale_qty, m).tolist()
    lot_sku, lot_qty = o.lot_sku.tolist(), o.lot_qty.tolist()
    seg_start = np.searchsorted(segment, np.arange(m), side="left").tolist()
    seg_end = np.searchsorted(segment, np.arange(m), side="right").tolist()
    sale_qty = o.sale_qty.tolist()

    fast_lot = [-1] * m  # per sorted lot: the layer (sorted lot position) its whole segment takes from
    slow: list[tuple[int, int, int]] = []  # (sorted sale, sorted lot, quantity) of segments crossing layers
    stack_lot: list[int] = []
    stack_rem: list[int] = []
    previous_sku = -1
    for g in range(m):
        if lot_sku[g] != previous_sku:
            stack_lot.clear()
            stack_rem.clear()
            previous_sku = lot_sku[g]
        if lot_qty[g]:
            stack_lot.append(g)
            stack_rem.append(lot_qty[g])
        need = seg_demand[g]
        if not need:
            continue
        top = stack_rem[-1]  # the stock check guarantees the stack holds the segment's demand
        if top > need:
            stack_rem[-1] = top - need
            fast_lot[g] = stack_lot[-1]
        elif top == need:
            fast_lot[g] = stack_lot.pop()
            stack_rem.pop()
        else:
            for k in range(seg_start[g], seg_end[g]):
                want = sale_qty[k]
                while want:
                    take = min(want, stack_rem[-1])
                    slow.append((k, stack_lot[-1], take))
                    want -= take
                    if take == stack_rem[-1]:
                        stack_lot.pop()
                        stack_rem.pop()
                    else:
                        stack_rem[-1] -= take

    fast_seg = np.array(fast_lot, dtype=np.int64).reshape(-1)
    sale_fast = fast_seg[segment] >= 0
    fast_k = np.flatnonzero(sale_fast)
    slice_k = fast_k
    slice_pos = fast_seg[segment[fast_k]]
    slice_qty = o.sale_qty[fast_k]
    if slow:
        slow_arr = np.array(slow, dtype=np.int64).reshape(-1, 3)
        slice_k = np.concatenate([fast_k, slow_arr[:, 0]])
        slice_pos = np.concatenate([slice_pos, slow_arr[:, 1]])
        slice_qty = np.concatenate([slice_qty, slow_arr[:, 2]])
        by_sale = np.argsort(slice_k, kind="stable")  # slow slices keep the order they were taken in
        slice_k, slice_pos, slice_qty = slice_k[by_sale], slice_pos[by_sale], slice_qty[by_sale]
    slice_lot = o.lot_order[slice_pos]
    slice_amount = times(slice_qty, np.asarray(lots.unit_cost, dtype=np.int64)[slice_lot])
    starts = np.flatnonzero(np.concatenate([[True], slice_k[1:] != slice_k[:-1]]))
    sale_cogs = np.zeros(n, dtype=slice_amount.dtype)
    sale_cogs[o.sale_order[slice_k[starts]]] = sums_by_run(slice_amount, starts)
    lot_consumed = np.zeros(m, np.int64)
    np.add.at(lot_consumed, slice_lot, slice_qty)
    return FifoResult(
        errors=[],
        slice_sale=o.sale_order[slice_k],
        slice_lot=slice_lot,
        slice_quantity=slice_qty,
        slice_amount=slice_amount,
        sale_cogs=sale_cogs,
        lot_consumed=lot_consumed,
    )


def reference_allocate(sales: SalesBatch, lots: LotsBatch) -> FifoResult:
    """Plain LIFO with a stack of lots per SKU and Python integers: the exact path for inputs too large for
    int64, and a second opinion for the vectorised engine."""
    _check_batches(sales, lots)
    n, m = len(sales.sale_id), len(lots.lot_id)
    if n == 0:
        return _failed([], 0, m)
    sale_at = micros(sales.sale_date)
    lot_at = micros(lots.received_date)
    errors = reference_shortages(sales, lots, sale_at, lot_at)
    if errors:
        return _failed(errors, n, m)
    slices: list[tuple[int, int, int]] = []
    for sku, sale_idx, lot_idx in by_sku(sales, lots, sale_at, lot_at):
        del sku
        stack: list[list[int]] = []  # [lot index, remaining]
        pending = iter(lot_idx)
        nxt = next(pending, None)
        for i in sale_idx:
            while nxt is not None and lot_at[nxt] <= sale_at[i]:
                if int(lots.quantity[nxt]):
                    stack.append([nxt, int(lots.quantity[nxt])])
                nxt = next(pending, None)
            want = int(sales.quantity[i])
            while want:
                top = stack[-1]
                take = min(want, top[1])
                slices.append((i, top[0], take))
                want -= take
                top[1] -= take
                if not top[1]:
                    stack.pop()
    return result_of(slices, [int(c) for c in lots.unit_cost.tolist()], n, m)
