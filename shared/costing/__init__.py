"""Costing methods: one dispatch point from a method's name to its engine.

Every engine is a pure function from sales and available lots to cost slices (``FifoResult``: slices,
per-sale COGS, per-lot consumption, or the INSUFFICIENT_STOCK errors), at the scales of ``shared.decimals``.
See docs/costing.md for each method's rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from shared.costing import fifo, lifo, moving_average
from shared.costing.fifo import FifoResult, LotsBatch, SalesBatch

CostingResult = FifoResult


class Method(StrEnum):
    FIFO = "fifo"
    LIFO = "lifo"
    MOVING_AVERAGE = "moving_average"


def allocate(
    method: Method | str,
    sales: SalesBatch,
    lots: LotsBatch,
    *,
    opening: Mapping[str, int] | None = None,
    averages: Mapping[str, tuple[int, int]] | None = None,
) -> CostingResult:
    """Cost ``sales`` against ``lots`` by ``method``. Moving average only: ``opening`` maps a SKU to the
    value its pool carries beyond its lots' quantity x unit cost (scaled 10**8), ``averages`` to the unit
    cost in force and the instant (µs) of the sale it was last used at (docs/costing.md)."""
    method = Method(method)
    if method is Method.FIFO:
        return fifo.allocate(sales, lots)
    if method is Method.LIFO:
        return lifo.allocate(sales, lots)
    return moving_average.allocate(sales, lots, opening, averages)


def reference_allocate(
    method: Method | str,
    sales: SalesBatch,
    lots: LotsBatch,
    *,
    opening: Mapping[str, int] | None = None,
    averages: Mapping[str, tuple[int, int]] | None = None,
) -> CostingResult:
    """The plain, one-sale-at-a-time implementation of ``method`` (Python integers)."""
    method = Method(method)
    if method is Method.FIFO:
        return fifo.reference_allocate(sales, lots)
    if method is Method.LIFO:
        return lifo.reference_allocate(sales, lots)
    return moving_average.reference_allocate(sales, lots, opening, averages)


__all__ = ["CostingResult", "LotsBatch", "Method", "SalesBatch", "allocate", "reference_allocate"]
