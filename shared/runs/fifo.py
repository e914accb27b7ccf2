"""The FIFO engine moved to `shared.costing.fifo` (beside LIFO and moving average); these names stay importable
from here for the run pipeline and its tests."""

from __future__ import annotations

from shared.costing.fifo import (
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
    allocate,
    from_datetime64,
    reference_allocate,
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
    "RowError",
    "Sale",
    "SalesBatch",
    "allocate",
    "from_datetime64",
    "reference_allocate",
    "to_datetime64",
]
