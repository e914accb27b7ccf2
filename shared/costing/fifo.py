"""The FIFO cost-of-goods engine: a pure function from sales and available lots to cost slices.

``allocate`` is the vectorised engine used by runs; ``reference_allocate`` is a plain deque-based
FIFO kept as the test oracle and as the exact fallback when int64 arithmetic could overflow.
Quantities are integers scaled by 10**4, unit costs by 10**4 and amounts by 10**8 (see
``shared.decimals``), so every figure is exact.

Semantics (contract section 5): per SKU, lots are consumed in ``(received_date, lot_id)`` order and
sales applied in ``(sale_date, sale_id)`` order (input position breaks any remaining tie); a sale
consumes only lots received at or before its date. Consumption is sequential on the SKU's
cumulative-quantity line: sale k takes ``[S(k-1), S(k))`` where S is the running sum of the SKU's
sale quantities, and it is short of stock when ``S(k)`` exceeds the quantity of lots received at or
before its date. A short sale still counts towards S, so later sales of the SKU are checked as if it
had been filled: the report then lists every sale that could not be costed as the file stands.
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from shared.costing.batches import (  # the engines' data types live beside them; importable from here as before
    _INT64_SAFE,
    INSUFFICIENT_STOCK,
    AmountArray,
    DatetimeArray,
    FifoResult,
    Int64Array,
    Lot,
    LotsBatch,
    RowError,
    Sale,
    SalesBatch,
    _as_micros,
    _check_batches,
    _failed,
    _fits_int64,
    _shortage,
    from_datetime64,
    int_array,
    to_datetime64,
)

__all__ = [
    "INSUFFICIENT_STOCK",
    "AmountArray",
    "DatetimeArray",
    "FifoResult",
    "Int64Array",
    "Lot",
    "LotsBatch",
    "Ordered",
    "RowError",
    "Sale",
    "SalesBatch",
    "Slices",
    "allocate",
    "fifo_slices",
    "from_datetime64",
    "order",
    "reference_allocate",
    "shortage_errors",
    "to_datetime64",
]

# ---------------------------------------------------------------------------------------------
# Vectorised engine

# Time units tried when packing instants into sort keys, coarsest first (microseconds).
_UNITS: Final = (86_400_000_000, 1_000_000, 1_000)


class _FirstSeenCodes(dict[str, int]):
    """Numbers keys in first-seen order; lookups of known keys stay at C speed."""

    def __missing__(self, key: str) -> int:
        code = self[key] = len(self)
        return code


def _factorize_skus(sales_sku: list[str], lots_sku: list[str]) -> tuple[Int64Array, Int64Array, int]:
    """Integer codes for SKUs, numbered in sorted SKU order so code order is SKU order."""
    codes = _FirstSeenCodes()
    sales_codes = np.fromiter(map(codes.__getitem__, sales_sku), dtype=np.int64, count=len(sales_sku))
    lots_codes = np.fromiter(map(codes.__getitem__, lots_sku), dtype=np.int64, count=len(lots_sku))
    names = list(codes)
    sorted_rank = np.empty(len(names), dtype=np.int64)
    sorted_rank[sorted(range(len(names)), key=names.__getitem__)] = np.arange(len(names))
    return sorted_rank[sales_codes], sorted_rank[lots_codes], len(names)


def _coarsest_unit(*deltas: Int64Array) -> int:
    """The coarsest of ``_UNITS`` that divides every delta (1 µs if none does)."""
    for unit in _UNITS:
        # A sample first: real timestamps usually fail the day or second test within a few values.
        if not any((d[:1024] % unit).any() for d in deltas) and not any((d % unit).any() for d in deltas):
            return unit
    return 1


def _instant_keys(
    sale_codes: Int64Array,
    sale_micros: Int64Array,
    lot_codes: Int64Array,
    lot_micros: Int64Array,
    n_skus: int,
) -> tuple[Int64Array, Int64Array]:
    """Non-negative int64 keys ordered like (SKU, instant), comparable between sales and lots."""
    first = min(int(sale_micros.min()), int(lot_micros.min()) if lot_micros.size else int(sale_micros.min()))
    sale_delta = sale_micros - first
    lot_delta = lot_micros - first
    unit = _coarsest_unit(sale_delta, lot_delta)
    if unit > 1:
        sale_delta //= unit
        lot_delta //= unit
    span = max(int(sale_delta.max()), int(lot_delta.max()) if lot_delta.size else 0) + 1
    if n_skus * span >= _INT64_SAFE:
        # Instants too far apart to pack next to the SKU code: rank them densely instead.
        instants = np.unique(np.concatenate([sale_delta, lot_delta]))
        sale_delta = np.searchsorted(instants, sale_delta).astype(np.int64)
        lot_delta = np.searchsorted(instants, lot_delta).astype(np.int64)
        span = instants.size
    return sale_codes * span + sale_delta, lot_codes * span + lot_delta


def _sorted_by_key(key: Int64Array, ids: list[str]) -> tuple[Int64Array, Int64Array]:
    """The order of ``key`` ascending, then id, then input position; and the sorted keys."""
    # Both sorts below keep equal keys in input order, which _break_ties relies on.
    if key.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    index_bits = max(int(key.size - 1).bit_length(), 1)
    if int(key.max()).bit_length() + index_bits <= 62:
        # A plain value sort (SIMD-accelerated) is several times faster than argsort: carry the input
        # position in the low bits, which also keeps equal keys in input order like a stable sort.
        packed = (key << index_bits) | np.arange(key.size, dtype=np.int64)
        packed.sort()
        order = packed & ((1 << index_bits) - 1)
        sorted_key = packed >> index_bits
    else:
        order = np.argsort(key, kind="stable").astype(np.int64, copy=False)
        sorted_key = key[order]
    tied = sorted_key[1:] == sorted_key[:-1]
    if tied.any():
        order = _break_ties(order, tied, ids)
    return order, sorted_key


def _break_ties(order: Int64Array, tied: npt.NDArray[np.bool_], ids: list[str]) -> Int64Array:
    """Order each run of equal keys (given in input order) by id, then input position.

    Ids usually already ascend with input position (S0001, S0002, ...), so only runs where they do
    not are sorted by id; comparing neighbours is far cheaper than ranking every tied id.
    """
    member = np.zeros(order.size, dtype=bool)
    member[1:] |= tied
    member[:-1] |= tied
    positions = np.flatnonzero(member)
    group_start = np.ones(positions.size, dtype=bool)
    group_start[1:] = ~tied[positions[1:] - 1]
    group = np.cumsum(group_start)
    members = order[positions]
    tied_ids = list(map(ids.__getitem__, members.tolist()))
    descending = np.fromiter(map(operator.gt, tied_ids[:-1], tied_ids[1:]), dtype=bool, count=len(tied_ids) - 1)
    unsorted_runs = np.unique(group[1:][descending & ~group_start[1:]])
    if unsorted_runs.size:
        redo = np.flatnonzero(np.isin(group, unsorted_runs))
        redo_ids = list(map(tied_ids.__getitem__, redo.tolist()))
        members[redo] = members[redo][_id_order(redo_ids, group[redo])]
    order = order.copy()
    order[positions] = members
    return order


def _id_order(ids: list[str], group: Int64Array) -> Int64Array:
    """Stable order by (group, id); equal ids keep their (input) order."""
    if max(map(len, ids)) <= 256 and "\x00" not in "".join(ids):
        # NumPy compares fixed-width strings by code point like Python, as long as no id has NULs.
        return np.lexsort((np.array(ids, dtype=str), group)).astype(np.int64, copy=False)
    ranking = {value: rank for rank, value in enumerate(sorted(set(ids)))}
    id_rank = np.fromiter(map(ranking.__getitem__, ids), dtype=np.int64, count=len(ids))
    return np.lexsort((id_rank, group)).astype(np.int64, copy=False)


@dataclass(frozen=True, slots=True)
class Ordered:
    """Sales and lots in costing order (SKU, then instant, then id, then input position), and the stock check.

    Every method orders and checks stock this way (``shared.costing.common``). ``sale_order``/``lot_order`` map
    a sorted position to the input index. ``upto[k]`` is how many sorted lots (of every SKU) have a key at or
    before sorted sale k, so ``upto - 1`` is the latest lot received by then when it is the sale's SKU's.
    """

    sale_order: Int64Array
    lot_order: Int64Array
    sale_sku: Int64Array  # SKU code per sorted sale
    lot_sku: Int64Array  # SKU code per sorted lot
    sale_qty: Int64Array
    lot_qty: Int64Array
    upto: Int64Array
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

    # All SKUs' lots, in FIFO order, laid end to end on one global quantity line.
    lot_cum = np.zeros(m + 1, np.int64)
    np.cumsum(lot_qty, out=lot_cum[1:])
    sale_cum = np.zeros(n + 1, np.int64)
    np.cumsum(sale_qty, out=sale_cum[1:])
    skus = np.arange(n_skus)
    lot_base = lot_cum[np.searchsorted(lot_sku, skus)][sale_sku]  # line start of the SKU
    demand = sale_cum[1:] - sale_cum[np.searchsorted(sale_sku, skus)][sale_sku]  # S(k) within the SKU
    # Lots whose (SKU, received instant) key is <= the sale's: the SKU's lots received by then.
    upto = np.searchsorted(lot_key, sale_key, side="right")
    received = lot_cum[upto] - lot_base  # L(t_k)
    return Ordered(
        sale_order=sale_order,
        lot_order=lot_order,
        sale_sku=sale_sku,
        lot_sku=lot_sku,
        sale_qty=sale_qty,
        lot_qty=lot_qty,
        upto=upto,
        short=np.flatnonzero(demand > received),
        demand=demand,
        received=received,
        sale_micros=sale_micros,
        lot_cum=lot_cum,
        lot_base=lot_base,
    )


def shortage_errors(sales: SalesBatch, ordered: Ordered) -> list[RowError]:
    """The INSUFFICIENT_STOCK errors of the short sales, in input order."""
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


@dataclass(frozen=True, slots=True)
class Slices:
    """FIFO's physical slicing of sorted sales over the lot line: per slice its sorted sale position, input lot
    index and quantity; per sorted sale its first slice; per input lot the quantity consumed."""

    sale: Int64Array
    lot: Int64Array
    quantity: Int64Array
    first: Int64Array
    lot_consumed: Int64Array


def fifo_slices(o: Ordered, n_lots: int) -> Slices:
    """Slice every sale of an ordering that passed the stock check, oldest lot first: sale k covers
    ``[end - quantity, end)`` on the global lot line."""
    n = o.sale_qty.size
    sale_end = o.lot_base + o.demand
    sale_begin = sale_end - o.sale_qty
    non_empty = o.lot_qty > 0  # empty lots take no part in consumption
    line_lots = o.lot_order[non_empty]
    lot_end = o.lot_cum[1:][non_empty]
    lot_begin = lot_end - o.lot_qty[non_empty]

    first_lot = np.searchsorted(lot_end, sale_begin, side="right")
    counts = np.searchsorted(lot_end, sale_end, side="left") - first_lot + 1
    first_slice = np.cumsum(counts) - counts
    total = int(first_slice[-1] + counts[-1])
    slice_k = np.repeat(np.arange(n), counts)
    line_pos = np.arange(total) - np.repeat(first_slice - first_lot, counts)
    slice_qty = np.minimum(sale_end[slice_k], lot_end[line_pos]) - np.maximum(sale_begin[slice_k], lot_begin[line_pos])
    slice_lot = line_lots[line_pos]
    # Lots are drained in line order, so each lot's slices are adjacent.
    lot_changes = np.ones(total, dtype=bool)
    lot_changes[1:] = line_pos[1:] != line_pos[:-1]
    lot_slice_starts = np.flatnonzero(lot_changes)
    lot_consumed = np.zeros(n_lots, np.int64)
    lot_consumed[slice_lot[lot_slice_starts]] = np.add.reduceat(slice_qty, lot_slice_starts)
    return Slices(slice_k, slice_lot, slice_qty, first_slice, lot_consumed)


def opening(
    sales: SalesBatch, lots: LotsBatch, reference: Callable[[SalesBatch, LotsBatch], FifoResult]
) -> Ordered | FifoResult:
    """What the vectorised engines (FIFO, LIFO) do first: check the batches, answer at once when there is
    nothing to cost, hand inputs too large for int64 to the engine's plain ``reference``, and report every sale
    short of stock; otherwise the sales and lots in order."""
    _check_batches(sales, lots)
    n, m = len(sales.sale_id), len(lots.lot_id)
    if n == 0:
        return _failed([], 0, m)
    if not _fits_int64(sales, lots):
        return reference(sales, lots)
    o = order(sales, lots)
    if o.short.size:
        return _failed(shortage_errors(sales, o), n, m)
    return o


def allocate(sales: SalesBatch, lots: LotsBatch) -> FifoResult:
    """Allocate sales to lots FIFO, vectorised: no Python loop per sale or per slice.

    All sales short of stock are reported together as INSUFFICIENT_STOCK errors. Results are exact;
    inputs large enough to risk int64 overflow are delegated to ``reference_allocate``.
    """
    o = opening(sales, lots, reference_allocate)
    if isinstance(o, FifoResult):
        return o
    n, m = len(sales.sale_id), len(lots.lot_id)
    s = fifo_slices(o, m)
    slice_amount = s.quantity * np.asarray(lots.unit_cost, dtype=np.int64)[s.lot]
    sale_cogs = np.zeros(n, np.int64)
    sale_cogs[o.sale_order] = np.add.reduceat(slice_amount, s.first)
    return FifoResult(
        errors=[],
        slice_sale=o.sale_order[s.sale],
        slice_lot=s.lot,
        slice_quantity=s.quantity,
        slice_amount=slice_amount,
        sale_cogs=sale_cogs,
        lot_consumed=s.lot_consumed,
    )


# ---------------------------------------------------------------------------------------------
# Reference implementation


def reference_allocate(sales: SalesBatch, lots: LotsBatch) -> FifoResult:
    """Plain FIFO with a deque of lots per SKU and Python integers; the oracle for ``allocate``.

    A short sale leaves a debt that later lots of the SKU pay first, which is exactly the
    cumulative-line rule described in the module docstring.
    """
    _check_batches(sales, lots)
    n, m = len(sales.sale_id), len(lots.lot_id)
    sale_qty = [int(q) for q in sales.quantity.tolist()]
    sale_at = _as_micros(sales.sale_date).tolist()
    lot_qty = [int(q) for q in lots.quantity.tolist()]
    lot_at = _as_micros(lots.received_date).tolist()
    lot_cost = [int(c) for c in lots.unit_cost.tolist()]

    queues: dict[str, deque[list[int]]] = {}
    for j in sorted(range(m), key=lambda j: (lots.sku[j], lot_at[j], lots.lot_id[j], j)):
        queues.setdefault(lots.sku[j], deque()).append([lot_qty[j], j])  # [remaining, lot index]

    errors: list[tuple[int, RowError]] = []
    slices: list[tuple[int, int, int]] = []  # (sale index, lot index, quantity)
    debt: dict[str, int] = {}
    for i in sorted(range(n), key=lambda i: (sales.sku[i], sale_at[i], sales.sale_id[i], i)):
        sku = sales.sku[i]
        queue = queues.get(sku, deque())
        need = debt.get(sku, 0) + sale_qty[i]
        while need > 0 and queue and lot_at[queue[0][1]] <= sale_at[i]:
            head = queue[0]
            take = min(need, head[0])
            if take:
                slices.append((i, head[1], take))
                head[0] -= take
                need -= take
            if head[0] == 0:
                queue.popleft()
        debt[sku] = need
        if need > 0:
            available = max(0, sale_qty[i] - need)
            error = _shortage(
                row=int(sales.row[i]),
                sale_id=sales.sale_id[i],
                sku=sku,
                sale_date_us=sale_at[i],
                requested=sale_qty[i],
                available=available,
            )
            errors.append((i, error))

    if errors:
        errors.sort(key=lambda item: item[0])
        return _failed([error for _, error in errors], n, m)

    sale_cogs = [0] * n
    lot_consumed = [0] * m
    amounts: list[int] = []
    for i, j, quantity in slices:
        amount = quantity * lot_cost[j]
        amounts.append(amount)
        sale_cogs[i] += amount
        lot_consumed[j] += quantity
    return FifoResult(
        errors=[],
        slice_sale=np.array([s[0] for s in slices], dtype=np.int64).reshape(-1),
        slice_lot=np.array([s[1] for s in slices], dtype=np.int64).reshape(-1),
        slice_quantity=np.array([s[2] for s in slices], dtype=np.int64).reshape(-1),
        slice_amount=int_array(amounts),
        sale_cogs=int_array(sale_cogs),
        lot_consumed=np.array(lot_consumed, dtype=np.int64).reshape(-1),
    )
