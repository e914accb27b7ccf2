"""What every costing method shares: the order of sales and lots, the stock check, and the result shape.

Every method orders a SKU's lots by ``(received_date, lot_id)`` and its sales by ``(sale_date, sale_id)``
(input position breaking any remaining tie), and a sale may only take units from lots received at or
before its date, exactly as FIFO does (``shared.costing.fifo``). Whether a sale is short of stock does not
depend on which lots it takes, only on the cumulative quantities: sale k of a SKU is short when the SKU's
sales up to k exceed what its lots received by then hold. So every method reports the same
INSUFFICIENT_STOCK errors as FIFO, with the same messages.

The scaling rules are FIFO's: quantities and unit costs are integers scaled by 10**4, amounts by 10**8.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from shared.costing.fifo import (  # the engine's own ordering helpers, so every method orders exactly alike
    FifoResult,
    LotsBatch,
    RowError,
    SalesBatch,
    _as_micros,
    _factorize_skus,
    _instant_keys,
    _shortage,
    _sorted_by_key,
)

Int64Array = npt.NDArray[np.int64]
CostingResult = FifoResult
INT64_SAFE = 2**62


@dataclass(frozen=True, slots=True)
class Ordered:
    """Sales and lots in costing order (SKU, then instant, then id, then input position).

    ``sale_order``/``lot_order`` map a sorted position to the input index; ``segment[k]`` is the sorted
    position of the latest lot received at or before sorted sale k (-1 when there is none), so the sales of
    one lot's segment (after it and before the SKU's next lot) are contiguous and ``segment`` ascends.
    """

    sale_order: Int64Array
    lot_order: Int64Array
    sale_sku: Int64Array  # SKU code per sorted sale
    lot_sku: Int64Array  # SKU code per sorted lot
    sale_qty: Int64Array
    lot_qty: Int64Array
    segment: Int64Array
    short: Int64Array  # sorted positions of the sales short of stock
    demand: Int64Array  # S(k): the SKU's cumulative sales up to sorted sale k
    received: Int64Array  # L(t_k): the SKU's lots received at or before sorted sale k
    sale_micros: Int64Array  # per input sale
    lot_cum: Int64Array  # cumulative sorted lot quantities, from 0 (the global lot line)
    lot_base: Int64Array  # per sorted sale: where its SKU's lots start on the line


def order(sales: SalesBatch, lots: LotsBatch) -> Ordered:
    """Sort both batches and check stock on the cumulative line (no Python loop per sale)."""
    n, m = len(sales.sale_id), len(lots.lot_id)
    sale_codes, lot_codes, n_skus = _factorize_skus(sales.sku, lots.sku)
    sale_micros = _as_micros(sales.sale_date)
    sale_key, lot_key = _instant_keys(sale_codes, sale_micros, lot_codes, _as_micros(lots.received_date), n_skus)
    sale_order, sale_key = _sorted_by_key(sale_key, sales.sale_id)
    lot_order, lot_key = _sorted_by_key(lot_key, lots.lot_id)
    sale_qty = np.asarray(sales.quantity, dtype=np.int64)[sale_order]
    lot_qty = np.asarray(lots.quantity, dtype=np.int64)[lot_order]
    sale_sku = sale_codes[sale_order]
    lot_sku = lot_codes[lot_order]
    lot_cum = np.zeros(m + 1, np.int64)
    np.cumsum(lot_qty, out=lot_cum[1:])
    sale_cum = np.zeros(n + 1, np.int64)
    np.cumsum(sale_qty, out=sale_cum[1:])
    skus = np.arange(n_skus)
    lot_base = lot_cum[np.searchsorted(lot_sku, skus)][sale_sku]
    demand = sale_cum[1:] - sale_cum[np.searchsorted(sale_sku, skus)][sale_sku]
    upto = np.searchsorted(lot_key, sale_key, side="right")
    received = lot_cum[upto] - lot_base
    segment = upto - 1
    # A segment index that belongs to another SKU means no lot of the sale's SKU by then: short anyway.
    if m:
        foreign = (segment < 0) | (lot_sku[np.maximum(segment, 0)] != sale_sku)
        segment = np.where(foreign, -1, segment)
    else:
        segment = np.full(n, -1, np.int64)
    short = np.flatnonzero(demand > received)
    return Ordered(
        sale_order=sale_order,
        lot_order=lot_order,
        sale_sku=sale_sku,
        lot_sku=lot_sku,
        sale_qty=sale_qty,
        lot_qty=lot_qty,
        segment=segment.astype(np.int64, copy=False),
        short=short,
        demand=demand,
        received=received,
        sale_micros=sale_micros,
        lot_cum=lot_cum,
        lot_base=lot_base,
    )


def fifo_slices(o: Ordered, n_lots: int) -> tuple[Int64Array, Int64Array, Int64Array, Int64Array]:
    """The FIFO engine's physical slicing on an ordering that passed the stock check (the same arithmetic as
    ``shared.costing.fifo.allocate``, reused by methods that take units oldest lot first): per slice its
    sorted sale position, input lot index and quantity, and per input lot the quantity consumed."""
    n = o.sale_qty.size
    sale_end = o.lot_base + o.demand
    sale_begin = sale_end - o.sale_qty
    non_empty = o.lot_qty > 0
    line_lots = o.lot_order[non_empty]
    lot_end = o.lot_cum[1:][non_empty]
    first_lot = np.searchsorted(lot_end, sale_begin, side="right")
    counts = np.searchsorted(lot_end, sale_end, side="left") - first_lot + 1
    first_slice = np.cumsum(counts) - counts
    total = int(first_slice[-1] + counts[-1])
    slice_k = np.repeat(np.arange(n), counts)
    line_pos = np.arange(total) - np.repeat(first_slice - first_lot, counts)
    lot_begin = lot_end - o.lot_qty[non_empty]
    slice_qty = np.minimum(sale_end[slice_k], lot_end[line_pos]) - np.maximum(sale_begin[slice_k], lot_begin[line_pos])
    slice_lot = line_lots[line_pos]
    lot_changes = np.ones(total, dtype=bool)
    lot_changes[1:] = line_pos[1:] != line_pos[:-1]
    lot_slice_starts = np.flatnonzero(lot_changes)
    lot_consumed = np.zeros(n_lots, np.int64)
    lot_consumed[slice_lot[lot_slice_starts]] = np.add.reduceat(slice_qty, lot_slice_starts)
    return slice_k, slice_lot, slice_qty, lot_consumed


def shortage_errors(sales: SalesBatch, ordered: Ordered) -> list[RowError]:
    """The INSUFFICIENT_STOCK errors of the short sales, in input order (FIFO's messages)."""
    errors: list[tuple[int, RowError]] = []
    for k in ordered.short.tolist():
        i = int(ordered.sale_order[k])
        requested = int(ordered.sale_qty[k])
        error = _shortage(
            row=int(sales.row[i]),
            sale_id=sales.sale_id[i],
            sku=sales.sku[i],
            sale_date_us=int(ordered.sale_micros[i]),
            requested=requested,
            available=max(0, int(ordered.received[k]) - (int(ordered.demand[k]) - requested)),
        )
        errors.append((i, error))
    errors.sort(key=lambda item: item[0])
    return [error for _, error in errors]


def segment_demand(ordered: Ordered, n_lots: int) -> Int64Array:
    """Per sorted lot: the quantity its segment's sales take (sales are sorted, so segments are runs)."""
    out = np.zeros(n_lots, np.int64)
    if ordered.segment.size:
        np.add.at(out, ordered.segment, ordered.sale_qty)
    return out


def int_array(values: list[int]) -> npt.NDArray[Any]:
    """int64 when every value fits, else Python ints in an object array (as the FIFO engine's amounts)."""
    try:
        return np.array(values, dtype=np.int64).reshape(-1)
    except OverflowError:
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out


def times(quantity: Int64Array, unit_cost: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """quantity x unit cost per element, exact: int64 when it provably fits, Python ints otherwise."""
    if quantity.size and int(np.abs(quantity).max()) * int(np.abs(unit_cost).max()) >= INT64_SAFE:
        return int_array([int(q) * int(c) for q, c in zip(quantity.tolist(), unit_cost.tolist(), strict=True)])
    product: Int64Array = quantity * np.asarray(unit_cost, dtype=np.int64)
    return product


def sums_by_run(values: npt.NDArray[Any], starts: Int64Array) -> npt.NDArray[Any]:
    """Sums of consecutive runs of ``values`` beginning at ``starts`` (exact for object arrays too)."""
    if values.dtype == object:
        bounds = [*starts.tolist(), len(values)]
        return int_array([int(sum(values[a:b].tolist(), 0)) for a, b in itertools.pairwise(bounds)])
    summed: Int64Array = np.add.reduceat(values, starts)
    return summed


def round_half_even(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to the nearest integer, ties to even (denominator > 0)."""
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2):
        quotient += 1
    return quotient


# ---------------------------------------------------------------------------------------------
# The plain (reference) engines' shared parts: Python integers, one SKU at a time.


def micros(values: npt.NDArray[np.datetime64]) -> list[int]:
    """Instants as microseconds since the epoch, as Python ints."""
    return [int(v) for v in _as_micros(values).tolist()]


def by_sku(
    sales: SalesBatch, lots: LotsBatch, sale_at: list[int], lot_at: list[int]
) -> Iterator[tuple[str, list[int], list[int]]]:
    """Per SKU (in SKU order): its sales and lots as input indices, each in costing order."""
    sale_groups: dict[str, list[int]] = {}
    for i in sorted(range(len(sales.sale_id)), key=lambda i: (sales.sku[i], sale_at[i], sales.sale_id[i], i)):
        sale_groups.setdefault(sales.sku[i], []).append(i)
    lot_groups: dict[str, list[int]] = {}
    for j in sorted(range(len(lots.lot_id)), key=lambda j: (lots.sku[j], lot_at[j], lots.lot_id[j], j)):
        lot_groups.setdefault(lots.sku[j], []).append(j)
    for sku in sorted(sale_groups):
        yield sku, sale_groups[sku], lot_groups.get(sku, [])


def reference_shortages(sales: SalesBatch, lots: LotsBatch, sale_at: list[int], lot_at: list[int]) -> list[RowError]:
    """The cumulative stock check of the module docstring, one sale at a time."""
    errors: list[tuple[int, RowError]] = []
    for sku, sale_idx, lot_idx in by_sku(sales, lots, sale_at, lot_at):
        demand = received = 0
        pending = iter(lot_idx)
        nxt = next(pending, None)
        for i in sale_idx:
            while nxt is not None and lot_at[nxt] <= sale_at[i]:
                received += int(lots.quantity[nxt])
                nxt = next(pending, None)
            requested = int(sales.quantity[i])
            demand += requested
            if demand > received:
                error = _shortage(
                    row=int(sales.row[i]),
                    sale_id=sales.sale_id[i],
                    sku=sku,
                    sale_date_us=sale_at[i],
                    requested=requested,
                    available=max(0, received - (demand - requested)),
                )
                errors.append((i, error))
    errors.sort(key=lambda item: item[0])
    return [error for _, error in errors]


def result_of(
    slices: list[tuple[int, int, int]], unit_cost: list[int], n: int, m: int, amounts: list[int] | None = None
) -> FifoResult:
    """A result from (sale index, lot index, quantity) slices, with amounts quantity x lot cost unless given."""
    if amounts is None:
        amounts = [q * unit_cost[j] for _, j, q in slices]
    sale_cogs = [0] * n
    lot_consumed = [0] * m
    for (i, j, q), amount in zip(slices, amounts, strict=True):
        sale_cogs[i] += amount
        lot_consumed[j] += q
    return FifoResult(
        errors=[],
        slice_sale=np.array([s[0] for s in slices], dtype=np.int64).reshape(-1),
        slice_lot=np.array([s[1] for s in slices], dtype=np.int64).reshape(-1),
        slice_quantity=np.array([s[2] for s in slices], dtype=np.int64).reshape(-1),
        slice_amount=int_array(amounts),
        sale_cogs=int_array(sale_cogs),
        lot_consumed=np.array(lot_consumed, dtype=np.int64).reshape(-1),
    )
