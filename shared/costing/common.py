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
from typing import Any

import numpy as np
import numpy.typing as npt

from shared.costing.batches import FifoResult, LotsBatch, RowError, SalesBatch, _as_micros, _shortage, int_array
from shared.costing.fifo import Ordered, Slices, fifo_slices, order, shortage_errors

Int64Array = npt.NDArray[np.int64]
CostingResult = FifoResult
INT64_SAFE = 2**62

__all__ = ["Ordered", "Slices", "fifo_slices", "order", "shortage_errors"]  # FIFO's ordering, every method's


def segments(o: Ordered) -> Int64Array:
    """Per sorted sale: the sorted position of the latest lot of its SKU received at or before it (-1 when there
    is none). The sales of one lot's *segment* (after it and before the SKU's next lot) are then contiguous and
    the result ascends."""
    if not o.lot_qty.size:
        return np.full(o.sale_qty.size, -1, np.int64)
    segment = o.upto - 1
    # A segment index that belongs to another SKU means no lot of the sale's SKU by then: short anyway.
    foreign = (segment < 0) | (o.lot_sku[np.maximum(segment, 0)] != o.sale_sku)
    return np.where(foreign, -1, segment).astype(np.int64, copy=False)


def segment_demand(segment: Int64Array, sale_qty: Int64Array, n_lots: int) -> Int64Array:
    """Per sorted lot: the quantity its segment's sales take (sales are sorted, so segments are runs)."""
    out = np.zeros(n_lots, np.int64)
    if segment.size:
        np.add.at(out, segment, sale_qty)
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
