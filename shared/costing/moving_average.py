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

The pool's unit cost after each lot is a recurrence along the SKU's lots (each rounding depends on the value
the previous ones left), but SKUs are independent: the engine takes the k-th lot of every SKU at once, one
vectorised step per rank k, in exact int64 arithmetic with its bounds checked at each step. When fewer than
``WAVEFRONT_MIN_SKUS`` SKUs have lots left at a rank (a few SKUs with very many lots), it finishes those lot by lot
in Python integers. Between two receipts every sale of a SKU is costed at the same ``a``, so the sales and their
slices are then priced in columns. Inputs beyond int64 go to ``reference_allocate``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Final

import numpy as np

from shared.costing.batches import (
    FifoResult,
    Int64Array,
    LotsBatch,
    SalesBatch,
    _check_batches,
    _failed,
    _fits_int64,
    int_array,
)
from shared.costing.common import (
    INT64_SAFE,
    Ordered,
    by_sku,
    fifo_slices,
    micros,
    order,
    reference_shortages,
    result_of,
    round_half_even,
    segment_demand,
    segments,
    shortage_errors,
    times,
)

# Below this many SKUs with a lot at a rank, a vectorised step costs more than the Python loop over those lots.
WAVEFRONT_MIN_SKUS: Final = 64
_BOUND: Final = 2**61  # pool values and lot values stay below this, so sums and products of two stay in int64
_NEVER: Final = -(2**63)


class _TooLarge(Exception):
    """A pool's figures would leave int64: the exact Python-integer implementation takes over."""


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
    segment = segments(o)
    try:
        average, emptied, remainder = _pool_costs(o, lots, segment_demand(segment, o.sale_qty, m), opening, averages)
    except _TooLarge:
        return reference_allocate(sales, lots, opening, averages)

    s = fifo_slices(o, m)
    sorted_unit = average[segment]  # per sorted sale: the pool's unit cost at its date
    slice_amount = times(s.quantity, sorted_unit[s.sale])
    unit = np.zeros(n, np.int64)
    unit[o.sale_order] = sorted_unit
    sale_cogs = times(np.asarray(sales.quantity, dtype=np.int64), unit)
    if emptied.size:
        # The sale emptying a pool is the last of its lot's segment; its remainder goes on its last slice.
        last_sale = np.searchsorted(segment, emptied, side="right") - 1
        last_slice = np.append(s.first, s.sale.size)[last_sale + 1] - 1
        slice_amount = _add_at(slice_amount, last_slice, remainder)
        sale_cogs = _add_at(sale_cogs, o.sale_order[last_sale], remainder)
    return FifoResult(
        errors=[],
        slice_sale=o.sale_order[s.sale],
        slice_lot=s.lot,
        slice_quantity=s.quantity,
        slice_amount=slice_amount,
        sale_cogs=sale_cogs,
        lot_consumed=s.lot_consumed,
    )


def _add_at(values: np.ndarray, at: Int64Array, extra: Int64Array) -> np.ndarray:
    """``values`` with ``extra`` added at the distinct positions ``at``, exact (Python ints past int64)."""
    if values.dtype != object and int(np.abs(values).max()) + int(np.abs(extra).max()) < INT64_SAFE:
        values[at] += extra
        return values
    out = values.astype(object)
    out[at] += extra.astype(object)
    return int_array([int(v) for v in out.tolist()])


def _pool_costs(
    o: Ordered,
    lots: LotsBatch,
    seg_demand: Int64Array,
    opening: Mapping[str, int] | None,
    averages: Mapping[str, tuple[int, int]] | None,
) -> tuple[Int64Array, Int64Array, Int64Array]:
    """Per sorted lot: the pool's unit cost after it (for its segment's sales); and the sorted lots whose segment
    empties the pool, with the remainder (value less quantity x unit cost) that sale takes on top."""
    m = o.lot_qty.size
    lot_cost = np.asarray(lots.unit_cost, dtype=np.int64)[o.lot_order]
    if m and int(o.lot_qty.max()) * int(np.abs(lot_cost).max()) >= _BOUND:
        raise _TooLarge
    starts = np.flatnonzero(np.concatenate([[True], o.lot_sku[1:] != o.lot_sku[:-1]]))  # each SKU's first lot
    counts = np.diff(np.append(starts, m))
    group = np.repeat(np.arange(starts.size), counts)  # per sorted lot: its SKU's number among the lots' SKUs
    pool_qty = np.zeros(starts.size, np.int64)
    pool_value = np.zeros(starts.size, np.int64)
    anchored = np.zeros(m, dtype=bool)  # a lot the pool held when its average was last used: that average stays
    anchor_cost = np.zeros(m, np.int64)
    if opening or averages:
        names = [lots.sku[i] for i in o.lot_order[starts].tolist()]
        pool_value[:] = [(opening or {}).get(name, 0) for name in names]
        if averages:
            held = [averages.get(name, (0, _NEVER)) for name in names]
            anchor_cost = np.array([h[0] for h in held], dtype=np.int64)[group]
            anchor_at = np.array([h[1] for h in held], dtype=np.int64)[group]
            anchored = np.asarray(lots.received_date, dtype="datetime64[us]")[o.lot_order].view(np.int64) <= anchor_at
    if starts.size and int(np.abs(pool_value).max()) >= _BOUND:
        raise _TooLarge

    rank = np.arange(m) - starts[group]
    by_rank = np.argsort(rank, kind="stable")  # rank by rank; within a rank, SKU order
    bounds = np.searchsorted(rank[by_rank], np.arange(int(counts.max(initial=0)) + 1)).tolist()
    average = np.zeros(m, np.int64)
    emptied: list[Int64Array] = []
    remainder: list[Int64Array] = []
    k = 0
    while k + 1 < len(bounds) and bounds[k + 1] - bounds[k] >= WAVEFRONT_MIN_SKUS:
        g = by_rank[bounds[k] : bounds[k + 1]]
        j = group[g]
        q = o.lot_qty[g]
        qty = pool_qty[j] + q
        value = pool_value[j] + q * lot_cost[g]
        a, rest = np.divmod(value, np.maximum(qty, 1))  # V / Q rounded half-even: floor, then up past half
        a += (2 * rest > qty) | ((2 * rest == qty) & (a & 1 == 1))
        a = np.where(anchored[g], anchor_cost[g], np.where(qty > 0, a, 0))
        if int(np.abs(a).max()) * int(qty.max()) >= INT64_SAFE:
            raise _TooLarge
        average[g] = a
        need = seg_demand[g]
        value -= a * need
        empties = np.flatnonzero((need > 0) & (need == qty))
        if empties.size:
            emptied.append(g[empties])
            remainder.append(value[empties])  # V - a x Q, with Q the whole need
            value[empties] = 0
        if int(np.abs(value).max()) >= _BOUND:
            raise _TooLarge
        pool_qty[j] = qty - need
        pool_value[j] = value
        k += 1
    if k + 1 < len(bounds):
        tail = np.sort(by_rank[bounds[k] :])
        tail_average, tail_emptied, tail_remainder = _pool_costs_by_lot(
            tail, group, o.lot_qty, lot_cost, seg_demand, anchored, anchor_cost, pool_qty, pool_value
        )
        average[tail] = tail_average
        emptied.append(tail_emptied)
        remainder.append(tail_remainder)
    none = np.zeros(0, np.int64)
    return average, np.concatenate([none, *emptied]), np.concatenate([none, *remainder])


def _pool_costs_by_lot(
    tail: Int64Array,
    group: Int64Array,
    lot_qty: Int64Array,
    lot_cost: Int64Array,
    seg_demand: Int64Array,
    anchored: np.ndarray,
    anchor_cost: Int64Array,
    pool_qty: Int64Array,
    pool_value: Int64Array,
) -> tuple[Int64Array, Int64Array, Int64Array]:
    """The same recurrence lot by lot in Python integers, for the SKUs still holding lots after the vectorised
    ranks (``tail``: those lots in sorted order; ``pool_qty``/``pool_value`` the pools they start from)."""
    average: list[int] = []
    emptied: list[int] = []
    remainder: list[int] = []
    qty = value = 0
    current = -1
    for g, j, q, cost, need, held, held_cost in zip(
        tail.tolist(), group[tail].tolist(), lot_qty[tail].tolist(), lot_cost[tail].tolist(),
        seg_demand[tail].tolist(), anchored[tail].tolist(), anchor_cost[tail].tolist(), strict=True,
    ):  # fmt: skip
        if j != current:
            current, qty, value = j, int(pool_qty[j]), int(pool_value[j])
        if q:
            qty += q
            value += q * cost
        if held:
            a = held_cost
        elif qty:
            a, rest = divmod(value, qty)  # round_half_even, inlined: this loop runs once per lot
            if 2 * rest > qty or (2 * rest == qty and a & 1):
                a += 1
        else:
            a = 0
        average.append(a)
        if not need:
            continue
        if need == qty:
            emptied.append(g)
            remainder.append(value - a * qty)
            qty = value = 0
        else:
            qty -= need
            value -= a * need
    try:
        return (
            np.array(average, dtype=np.int64).reshape(-1),
            np.array(emptied, dtype=np.int64).reshape(-1),
            np.array(remainder, dtype=np.int64).reshape(-1),
        )
    except OverflowError:
        raise _TooLarge from None


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
