"""Moving average (perpetual weighted average): a SKU's units on hand form one pool, and every sale is costed at
the pool's unit cost at its date.

The rule, exact at FIFO's scales (quantities and unit costs 10**-4, amounts 10**-8):
- The pool holds a quantity Q and a value V, both exact. A lot received adds its quantity and its
  quantity x unit cost; then the pool's unit cost is recomputed as ``a = V / Q`` rounded half-even to
  10**-4 (the unit-cost scale). A receipt is the only thing that changes ``a``.
- A sale of quantity q costs ``q x a`` (exact at 10**-8: no further rounding) and takes that off V.
- The sale that empties the pool (Q becomes 0) takes the pool's remaining value instead, so the rounding of
  ``a`` never leaves value behind: quantity and value are conserved exactly, and a SKU with nothing on
  hand has no value left.
- ``opening`` carries what earlier runs left in a pool beyond its lots' own costs (the sum of the SKU's
  ledger amounts less its live lots' quantity x unit cost); it joins the pool before the SKU's first lot.
- ``averages`` carries the unit cost earlier runs left in force, with the instant of the sale it was last
  used at: lots received at or before that instant were in the pool then, so they do not recompute ``a``
  (it stays the one in force); later lots are receipts like any other. So costing sales in several runs gives
  exactly the books of one run.

Which lots the units physically leave is FIFO's choice (oldest lot first), so lot balances move as they do
under FIFO; each slice carries its quantity x ``a``, and the emptying sale's last slice carries the
rounding remainder. Lots and sales are ordered, and stock checked, exactly as by FIFO.

The engine loops in Python once per lot (a receipt), not once per sale: between two receipts every sale of
the SKU is costed at the same ``a``, so the sales are priced in columns afterwards.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

import numpy as np

from shared.costing.common import (
    INT64_SAFE,
    by_sku,
    fifo_slices,
    int_array,
    micros,
    order,
    reference_shortages,
    result_of,
    round_half_even,
    segment_demand,
    shortage_errors,
    times,
)
from shared.costing.fifo import FifoResult, LotsBatch, SalesBatch, _check_batches, _failed, _fits_int64


def allocate(
    sales: SalesBatch,
    lots: LotsBatch,
    opening: Mapping[str, int] | None = None,
    averages: Mapping[str, tuple[int, int]] | None = None,
) -> FifoResult:
    """Cost sales at the moving average; ``opening`` maps a SKU to its pool's carried value (scaled 10**8),
    ``averages`` to the unit cost in force (scaled 10**4) and the instant (µs since the epoch) it was last used."""
    _check_batches(sales, lots)
    n, m = len(sales.sale_id), len(lots.lot_id)
    if n == 0:
        return _failed([], 0, m)
    if not _fits_int64(sales, lots) or any(abs(v) >= INT64_SAFE for v in (opening or {}).values()):
        return reference_allocate(sales, lots, opening, averages)
    o = order(sales, lots)
    if o.short.size:
        return _failed(shortage_errors(sales, o), n, m)
    slice_k, slice_lot, slice_qty, lot_consumed = fifo_slices(o, m)
    seg_demand = segment_demand(o, m).tolist()
    lot_sku, lot_qty = o.lot_sku.tolist(), o.lot_qty.tolist()
    lot_cost = np.asarray(lots.unit_cost, dtype=np.int64)[o.lot_order].tolist()
    lot_index = o.lot_order.tolist()
    lot_at = micros(lots.received_date[o.lot_order]) if averages else [0] * m  # (0 is after no anchor)
    carried, in_force = opening or {}, averages or {}
    anchor_cost, anchor_at = 0, -1  # the unit cost in force for the SKU's lots up to anchor_at
    average = [0] * m  # per sorted lot: the pool's unit cost after it, for its segment's sales
    remainder: dict[int, int] = {}  # sorted lot -> what the sale emptying the pool in its segment adds
    pool_qty = pool_value = 0
    previous_sku = -1
    for g in range(m):
        if lot_sku[g] != previous_sku:
            previous_sku = lot_sku[g]
            sku = lots.sku[lot_index[g]]
            pool_qty, pool_value = 0, carried.get(sku, 0)
            anchor_cost, anchor_at = in_force.get(sku, (0, -(2**63)))
        q = lot_qty[g]
        if q:
            pool_qty += q
            pool_value += q * lot_cost[g]
        if lot_at[g] <= anchor_at:
            a = anchor_cost  # a lot the pool held when its average was last used leaves that average in force
        elif pool_qty:
            a, rest = divmod(pool_value, pool_qty)  # round_half_even, inlined: this loop runs once per lot
            if 2 * rest > pool_qty or (2 * rest == pool_qty and a & 1):
                a += 1
        else:
            a = 0
        average[g] = a
        need = seg_demand[g]
        if not need:
            continue
        if need == pool_qty:
            remainder[g] = pool_value - a * pool_qty
            pool_qty = pool_value = 0
        else:
            pool_qty -= need
            pool_value -= a * need

    sorted_unit = np.array(average, dtype=np.int64).reshape(-1)[o.segment]  # per sorted sale
    slice_amount = times(slice_qty, sorted_unit[slice_k])
    slice_sale = o.sale_order[slice_k]
    unit = np.zeros(n, np.int64)  # per input sale: the pool's unit cost at its date
    unit[o.sale_order] = sorted_unit
    sale_cogs = times(np.asarray(sales.quantity, dtype=np.int64), unit)
    if remainder:
        seg_end = np.searchsorted(o.segment, np.arange(m), side="right")
        ends = np.flatnonzero(np.concatenate([slice_k[1:] != slice_k[:-1], [True]]))
        last_slice = np.zeros(n, np.int64)
        last_slice[slice_sale[ends]] = ends
        slice_amount, sale_cogs = slice_amount.astype(object), sale_cogs.astype(object)
        for g, extra in remainder.items():
            i = int(o.sale_order[seg_end[g] - 1])  # the segment's last sale empties the pool
            slice_amount[last_slice[i]] += extra
            sale_cogs[i] += extra
        slice_amount = int_array([int(v) for v in slice_amount.tolist()])
        sale_cogs = int_array([int(v) for v in sale_cogs.tolist()])
    return FifoResult(
        errors=[],
        slice_sale=slice_sale,
        slice_lot=slice_lot,
        slice_quantity=slice_qty,
        slice_amount=slice_amount,
        sale_cogs=sale_cogs,
        lot_consumed=lot_consumed,
    )


def reference_allocate(
    sales: SalesBatch,
    lots: LotsBatch,
    opening: Mapping[str, int] | None = None,
    averages: Mapping[str, tuple[int, int]] | None = None,
) -> FifoResult:
    """The same rule with one pool and one FIFO deque per SKU and Python integers: the exact path for inputs
    too large for int64, and a second opinion for the engine above."""
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
    amounts: list[int] = []
    for sku, sale_idx, lot_idx in by_sku(sales, lots, sale_at, lot_at):
        layers: deque[list[int]] = deque()  # [lot index, remaining], oldest first
        pool_qty, pool_value, a = 0, (opening or {}).get(sku, 0), 0
        anchor_cost, anchor_at = (averages or {}).get(sku, (0, -(2**63)))
        pending = iter(lot_idx)
        nxt = next(pending, None)
        for i in sale_idx:
            while nxt is not None and lot_at[nxt] <= sale_at[i]:
                q = int(lots.quantity[nxt])
                if q:
                    layers.append([nxt, q])
                pool_qty += q
                pool_value += q * int(lots.unit_cost[nxt])
                if lot_at[nxt] <= anchor_at:
                    a = anchor_cost
                else:
                    a = round_half_even(pool_value, pool_qty) if pool_qty else 0
                nxt = next(pending, None)
            want = int(sales.quantity[i])
            cost = pool_value if want == pool_qty else want * a
            pool_qty, pool_value = pool_qty - want, pool_value - cost
            while want:
                head = layers[0]
                take = min(want, head[1])
                slices.append((i, head[0], take))
                amounts.append(take * a)
                want -= take
                head[1] -= take
                if not head[1]:
                    layers.popleft()
            amounts[-1] += cost - int(sales.quantity[i]) * a
    return result_of(slices, [int(c) for c in lots.unit_cost.tolist()], n, m, amounts)
