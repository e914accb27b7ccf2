"""What every costing engine takes and gives: sales and lots in columns, the result's slices, row errors, and
the scales' bounds (quantities and unit costs integers scaled 10**4, amounts 10**8; see ``shared.decimals``).
"""

from __future__ import annotations

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


def int_array(values: Sequence[int]) -> AmountArray:
    """int64 when every value fits, else Python ints in an object array (the engines' amounts)."""
    try:
        return np.array(values, dtype=np.int64).reshape(-1)
    except OverflowError:
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
