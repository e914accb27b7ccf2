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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from shared.decimals import QTY_SCALE, format_scaled

Int64Array = npt.NDArray[np.int64]
DatetimeArray = npt.NDArray[np.datetime64]
# Amount columns are int64, or Python ints in an object array when a value exceeds int64.
AmountArray = npt.NDArray[Any]

INSUFFICIENT_STOCK: Final = "INSUFFICIENT_STOCK"

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# Products and running sums on the vectorised path stay below this bound; anything larger goes
# through the exact reference implementation instead.
_INT64_SAFE: Final = 2**62


@dataclass(frozen=True, slots=True)
class RowError:
    """One validation problem, addressed by 1-based data row of its source file."""

    row: int
    field: str
    reason: str
    message: str
    file: str

    def as_dict(self) -> dict[str, object]:
        return {
            "row": self.row,
            "field": self.field,
            "reason": self.reason,
            "message": self.message,
            "file": self.file,
        }


def to_datetime64(value: datetime) -> np.datetime64:
    """A ``datetime`` as a UTC ``datetime64[us]``; naive values are taken to be UTC already."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return np.datetime64(value, "us")


def from_datetime64(value: np.datetime64 | int) -> datetime:
    """An aware UTC ``datetime`` from a ``datetime64`` (any unit) or from microseconds since the epoch."""
    if isinstance(value, np.datetime64):
        value = int(value.astype("datetime64[us]").astype(np.int64))
    return _EPOCH + timedelta(microseconds=int(value))


def _as_micros(values: DatetimeArray) -> Int64Array:
    micros = np.asarray(values).astype("datetime64[us]", copy=False).view(np.int64)
    if micros.size and (micros == np.iinfo(np.int64).min).any():
        raise ValueError("dates must not be NaT")
    return micros


@dataclass(frozen=True, slots=True)
class Sale:
    """A single sale for building a ``SalesBatch`` by hand; ``quantity`` is scaled by 10**4."""

    sale_id: str
    sku: str
    sale_date: datetime
    quantity: int
    row: int | None = None


@dataclass(frozen=True, slots=True)
class Lot:
    """A single lot for building a ``LotsBatch``; ``quantity`` and ``unit_cost`` are scaled by 10**4."""

    lot_id: str
    sku: str
    received_date: datetime
    quantity: int
    unit_cost: int
    row: int | None = None


@dataclass(frozen=True, slots=True)
class SalesBatch:
    """Sales in columns. ``row`` is the 1-based data row of each sale in its source (used in errors)."""

    row: Int64Array
    sale_id: list[str]
    sku: list[str]
    sale_date: DatetimeArray  # datetime64[us], UTC
    quantity: Int64Array  # scaled 10**4, > 0

    def __len__(self) -> int:
        return len(self.sale_id)

    @classmethod
    def empty(cls) -> SalesBatch:
        return cls(
            row=np.zeros(0, np.int64),
            sale_id=[],
            sku=[],
            sale_date=np.zeros(0, "datetime64[us]"),
            quantity=np.zeros(0, np.int64),
        )

    @classmethod
    def from_sales(cls, sales: Iterable[Sale | tuple[Any, ...]]) -> SalesBatch:
        """Build from ``Sale`` objects or ``(sale_id, sku, sale_date, quantity[, row])`` tuples.

        A missing ``row`` defaults to the position in the input plus one.
        """
        items = [s if isinstance(s, Sale) else Sale(*s) for s in sales]
        return cls(
            row=np.array([i + 1 if s.row is None else s.row for i, s in enumerate(items)], dtype=np.int64).reshape(-1),
            sale_id=[s.sale_id for s in items],
            sku=[s.sku for s in items],
            sale_date=np.array([to_datetime64(s.sale_date) for s in items], dtype="datetime64[us]").reshape(-1),
            quantity=np.array([s.quantity for s in items], dtype=np.int64).reshape(-1),
        )


@dataclass(frozen=True, slots=True)
class LotsBatch:
    """Lots in columns. ``row`` is 0 for lots already in the ledger (carried in from earlier runs)."""

    row: Int64Array
    lot_id: list[str]
    sku: list[str]
    received_date: DatetimeArray  # datetime64[us], UTC
    quantity: Int64Array  # scaled 10**4: the quantity available to this run, >= 0
    unit_cost: Int64Array  # scaled 10**4: unit_price + freight_cost_per_unit

    def __len__(self) -> int:
        return len(self.lot_id)

    @classmethod
    def empty(cls) -> LotsBatch:
        return cls(
            row=np.zeros(0, np.int64),
            lot_id=[],
            sku=[],
            received_date=np.zeros(0, "datetime64[us]"),
            quantity=np.zeros(0, np.int64),
            unit_cost=np.zeros(0, np.int64),
        )

    @classmethod
    def from_lots(cls, lots: Iterable[Lot | tuple[Any, ...]]) -> LotsBatch:
        """Build from ``Lot`` objects or ``(lot_id, sku, received_date, quantity, unit_cost[, row])``.

        A missing ``row`` defaults to the position in the input plus one.
        """
        items = [lot if isinstance(lot, Lot) else Lot(*lot) for lot in lots]
        return cls(
            row=np.array(
                [i + 1 if lot.row is None else lot.row for i, lot in enumerate(items)], dtype=np.int64
            ).reshape(-1),
            lot_id=[lot.lot_id for lot in items],
            sku=[lot.sku for lot in items],
            received_date=np.array([to_datetime64(lot.received_date) for lot in items], dtype="datetime64[us]").reshape(
                -1
            ),
            quantity=np.array([lot.quantity for lot in items], dtype=np.int64).reshape(-1),
            unit_cost=np.array([lot.unit_cost for lot in items], dtype=np.int64).reshape(-1),
        )


@dataclass(frozen=True, slots=True)
class FifoResult:
    """The outcome of an allocation.

    Slices are ordered by (SKU, sale order, lot order); ``slice_sale`` and ``slice_lot`` index the
    input batches. ``sale_cogs`` (scaled 10**8) and ``lot_consumed`` (scaled 10**4) follow input order.
    When ``errors`` is not empty the run cannot be costed: slices are empty and totals are zero.
    """

    errors: list[RowError]
    slice_sale: Int64Array
    slice_lot: Int64Array
    slice_quantity: Int64Array
    slice_amount: AmountArray
    sale_cogs: AmountArray
    lot_consumed: Int64Array

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def total_cogs(self) -> int:
        """Exact total COGS, scaled 10**8."""
        return int(sum(self.sale_cogs.tolist(), 0))

    @property
    def total_quantity(self) -> int:
        """Total quantity costed, scaled 10**4."""
        return int(sum(self.slice_quantity.tolist(), 0))


def _failed(errors: list[RowError], n_sales: int, n_lots: int) -> FifoResult:
    empty = np.zeros(0, np.int64)
    return FifoResult(
        errors=errors,
        slice_sale=empty,
        slice_lot=empty.copy(),
        slice_quantity=empty.copy(),
        slice_amount=empty.copy(),
        sale_cogs=np.zeros(n_sales, np.int64),
        lot_consumed=np.zeros(n_lots, np.int64),
    )


def _shortage(*, row: int, sale_id: str, sku: str, sale_date_us: int, requested: int, available: int) -> RowError:
    when = from_datetime64(sale_date_us).isoformat().replace("+00:00", "Z")
    return RowError(
        row=row,
        field="quantity_sold",
        reason=INSUFFICIENT_STOCK,
        message=(
            f"insufficient stock of SKU {sku!r} for sale {sale_id!r}: requested "
            f"{format_scaled(requested, QTY_SCALE)}, available {format_scaled(available, QTY_SCALE)} "
            f"from lots received at or before {when}"
        ),
        file="sales",
    )


def _check_batches(sales: SalesBatch, lots: LotsBatch) -> None:
    n, m = len(sales.sale_id), len(lots.lot_id)
    if not (len(sales.sku) == sales.row.shape[0] == sales.sale_date.shape[0] == sales.quantity.shape[0] == n):
        raise ValueError("SalesBatch columns have different lengths")
    if not (
        len(lots.sku)
        == lots.row.shape[0]
        == lots.received_date.shape[0]
        == lots.quantity.shape[0]
        == lots.unit_cost.shape[0]
        == m
    ):
        raise ValueError("LotsBatch columns have different lengths")
    if n and int(sales.quantity.min()) <= 0:
        raise ValueError("sale quantities must be positive")
    if m and int(lots.quantity.min()) < 0:
        raise ValueError("lot quantities must not be negative")


def _fits_int64(sales: SalesBatch, lots: LotsBatch) -> bool:
    """Whether every running sum and product on the vectorised path stays inside int64."""
    n, m = len(sales.sale_id), len(lots.lot_id)
    max_sale = int(sales.quantity.max()) if n else 0
    max_lot = int(lots.quantity.max()) if m else 0
    max_cost = int(np.abs(lots.unit_cost).max()) if m else 0
    return max_sale * n < _INT64_SAFE and max_lot * m < _INT64_SAFE and max_sale * max_cost < _INT64_SAFE


def _int_array(values: Sequence[int]) -> AmountArray:
    try:
        return np.array(values, dtype=np.int64).reshape(-1)
    except OverflowError:
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out


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


def allocate(sales: SalesBatch, lots: LotsBatch) -> FifoResult:
    """Allocate sales to lots FIFO, vectorised: no Python loop per sale or per slice.

    All sales short of stock are reported together as INSUFFICIENT_STOCK errors. Results are exact;
    inputs large enough to risk int64 overflow are delegated to ``reference_allocate``.
    """
    _check_batches(sales, lots)
    n, m = len(sales.sale_id), len(lots.lot_id)
    if n == 0:
        return _failed([], 0, m)
    if not _fits_int64(sales, lots):
        return reference_allocate(sales, lots)

    sale_codes, lot_codes, n_skus = _factorize_skus(sales.sku, lots.sku)
    sale_micros = _as_micros(sales.sale_date)
    sale_key, lot_key = _instant_keys(sale_codes, sale_micros, lot_codes, _as_micros(lots.received_date), n_skus)
    sale_order, sale_key = _sorted_by_key(sale_key, sales.sale_id)
    lot_order, lot_key = _sorted_by_key(lot_key, lots.lot_id)
    sale_qty = np.asarray(sales.quantity, dtype=np.int64)[sale_order]
    lot_qty = np.asarray(lots.quantity, dtype=np.int64)[lot_order]
    sale_sku = sale_codes[sale_order]

    # All SKUs' lots, in FIFO order, laid end to end on one global quantity line.
    lot_cum = np.zeros(m + 1, np.int64)
    np.cumsum(lot_qty, out=lot_cum[1:])
    sale_cum = np.zeros(n + 1, np.int64)
    np.cumsum(sale_qty, out=sale_cum[1:])
    skus = np.arange(n_skus)
    lot_base = lot_cum[np.searchsorted(lot_codes[lot_order], skus)][sale_sku]  # line start of the SKU
    demand = sale_cum[1:] - sale_cum[np.searchsorted(sale_sku, skus)][sale_sku]  # S(k) within the SKU
    # Lots whose (SKU, received instant) key is <= the sale's: the SKU's lots received by then.
    received = lot_cum[np.searchsorted(lot_key, sale_key, side="right")] - lot_base  # L(t_k)

    short = np.flatnonzero(demand > received)
    if short.size:
        errors: list[tuple[int, RowError]] = []
        for k in short.tolist():
            i = int(sale_order[k])
            requested = int(sale_qty[k])
            error = _shortage(
                row=int(sales.row[i]),
                sale_id=sales.sale_id[i],
                sku=sales.sku[i],
                sale_date_us=int(sale_micros[i]),
                requested=requested,
                available=max(0, int(received[k]) - (int(demand[k]) - requested)),
            )
            errors.append((i, error))
        errors.sort(key=lambda item: item[0])
        return _failed([error for _, error in errors], n, m)

    # Every sale fits: sale k covers [end - quantity, end) on the global lot line.
    sale_end = lot_base + demand
    sale_begin = sale_end - sale_qty
    non_empty = lot_qty > 0  # empty lots take no part in consumption
    line_lots = lot_order[non_empty]
    lot_end = lot_cum[1:][non_empty]
    lot_begin = lot_end - lot_qty[non_empty]

    first_lot = np.searchsorted(lot_end, sale_begin, side="right")
    counts = np.searchsorted(lot_end, sale_end, side="left") - first_lot + 1
    first_slice = np.cumsum(counts) - counts
    total = int(first_slice[-1] + counts[-1])
    slice_k = np.repeat(np.arange(n), counts)
    line_pos = np.arange(total) - np.repeat(first_slice - first_lot, counts)
    slice_qty = np.minimum(sale_end[slice_k], lot_end[line_pos]) - np.maximum(sale_begin[slice_k], lot_begin[line_pos])
    slice_lot = line_lots[line_pos]
    slice_amount = slice_qty * np.asarray(lots.unit_cost, dtype=np.int64)[slice_lot]

    sale_cogs = np.zeros(n, np.int64)
    sale_cogs[sale_order] = np.add.reduceat(slice_amount, first_slice)
    # Lots are drained in line order, so each lot's slices are adjacent.
    lot_changes = np.ones(total, dtype=bool)
    lot_changes[1:] = line_pos[1:] != line_pos[:-1]
    lot_slice_starts = np.flatnonzero(lot_changes)
    lot_consumed = np.zeros(m, np.int64)
    lot_consumed[slice_lot[lot_slice_starts]] = np.add.reduceat(slice_qty, lot_slice_starts)

    return FifoResult(
        errors=[],
        slice_sale=sale_order[slice_k],
        slice_lot=slice_lot,
        slice_quantity=slice_qty,
        slice_amount=slice_amount,
        sale_cogs=sale_cogs,
        lot_consumed=lot_consumed,
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
        slice_amount=_int_array(amounts),
        sale_cogs=_int_array(sale_cogs),
        lot_consumed=np.array(lot_consumed, dtype=np.int64).reshape(-1),
    )
