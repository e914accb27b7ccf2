"""Hand-checked cases for every costing method, and the dispatch point."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from unittest.mock import patch

import pytest

from shared.costing import Method, allocate, moving_average, reference_allocate
from shared.costing.fifo import INSUFFICIENT_STOCK, FifoResult, LotsBatch, SalesBatch
from tests.shared.costing import reference

METHODS = list(Method)


def day(n: int) -> datetime:
    return datetime(2024, 5, n, tzinfo=UTC)


def units(text: str) -> int:
    return int(Decimal(text).scaleb(4))


def money(scaled: int) -> Decimal:
    return Decimal(scaled).scaleb(-8)


def both(method: Method, sales: SalesBatch, lots: LotsBatch, opening: dict[str, int] | None = None) -> FifoResult:
    """The engine's result, after checking it against the engine's own plain implementation (for moving average
    both ways the engine computes the pool: every rank vectorised, and lot by lot)."""
    fast = allocate(method, sales, lots, opening=opening)
    slow = reference_allocate(method, sales, lots, opening=opening)
    results = [fast]
    if method is Method.MOVING_AVERAGE:
        with patch.object(moving_average, "WAVEFRONT_MIN_SKUS", 0):
            results.append(allocate(method, sales, lots, opening=opening))
    for result in results:
        assert result.errors == slow.errors
        for name in ("slice_sale", "slice_lot", "slice_quantity", "slice_amount", "sale_cogs", "lot_consumed"):
            assert getattr(result, name).tolist() == getattr(slow, name).tolist(), name
    return fast


TWO_LOTS = LotsBatch.from_lots(
    [("L1", "A", day(1), units("10"), units("10")), ("L2", "A", day(2), units("10"), units("20"))]
)
ISSUE_15 = SalesBatch.from_sales([("S1", "A", day(3), units("15"))])


@pytest.mark.parametrize(("method", "expected"), [("fifo", "200"), ("lifo", "250"), ("moving_average", "225")])
def test_issue_15_of_10_at_10_and_10_at_20(method: str, expected: str) -> None:
    result = both(Method(method), ISSUE_15, TWO_LOTS)
    assert money(result.total_cogs) == Decimal(expected)
    assert result.lot_consumed.sum() == units("15")
    # The slices: FIFO and moving average take L1 then L2 physically, LIFO L2 then L1.
    order = [1, 0] if method == "lifo" else [0, 1]
    assert result.slice_lot.tolist() == order
    assert reference.cost(method, ISSUE_15, TWO_LOTS).sale_cogs[0] == Decimal(expected)


def test_lifo_takes_only_lots_received_by_the_sale() -> None:
    lots = LotsBatch.from_lots(
        [("L1", "A", day(1), units("10"), units("10")), ("L2", "A", day(5), units("10"), units("20"))]
    )
    sales = SalesBatch.from_sales([("S1", "A", day(3), units("4")), ("S2", "A", day(6), units("12"))])
    result = both(Method.LIFO, sales, lots)
    # S1 before L2 arrives: L1 at 10. S2: all of L2 (200), then 2 of L1 (20).
    assert [money(c) for c in result.sale_cogs.tolist()] == [Decimal(40), Decimal(220)]
    assert result.lot_consumed.tolist() == [units("6"), units("10")]


def test_moving_average_across_receipts_and_the_remainder_of_an_emptied_pool() -> None:
    # 3 @ 10 and then 3 @ 10.0001: the average 10.00005 rounds half-even to 10.0000; the pool holds 60.0003.
    lots = LotsBatch.from_lots(
        [("L1", "A", day(1), units("3"), units("10")), ("L2", "A", day(2), units("3"), units("10.0001")),
         ("L3", "A", day(5), units("2"), units("7"))]
    )  # fmt: skip
    sales = SalesBatch.from_sales(
        [("S1", "A", day(3), units("1")), ("S2", "A", day(3), units("5")), ("S3", "A", day(6), units("1.5"))]
    )
    result = both(Method.MOVING_AVERAGE, sales, lots)
    cogs = [money(c) for c in result.sale_cogs.tolist()]
    # S1 at 10.0000; S2 empties the pool and takes what is left: 60.0003 - 10 = 50.0003.
    assert cogs[:2] == [Decimal("10"), Decimal("50.0003")]
    # The pool is empty; L3 alone sets the average: 1.5 @ 7.
    assert cogs[2] == Decimal("10.5")
    assert sum(cogs) + Decimal("0.5") * 7 == Decimal("30") + Decimal("30.0003") + Decimal("14")
    books = reference.cost("moving_average", sales, lots)
    assert [books.sale_cogs[i] for i in range(3)] == cogs


def test_moving_average_unit_cost_ties_round_half_even() -> None:
    # A: 1 @ 0.0001 and 1 @ 0.0002, average 0.00015, a tie: up to the even 0.0002. B: 1 @ 0.0002 and 1 @ 0.0003,
    # average 0.00025: down to the even 0.0002. C: 2 @ 0.0001 and 1 @ 0.0002, 0.000133..: down to 0.0001.
    lots = LotsBatch.from_lots(
        [("A1", "A", day(1), units("1"), 1), ("A2", "A", day(2), units("1"), 2),
         ("B1", "B", day(1), units("1"), 2), ("B2", "B", day(2), units("1"), 3),
         ("C1", "C", day(1), units("2"), 1), ("C2", "C", day(2), units("1"), 2)]
    )  # fmt: skip
    sales = SalesBatch.from_sales(
        [("SA", "A", day(3), units("1")), ("SB", "B", day(3), units("1")), ("SC", "C", day(3), units("1"))]
    )
    result = both(Method.MOVING_AVERAGE, sales, lots)
    assert [money(c) for c in result.sale_cogs.tolist()] == [Decimal("0.0002"), Decimal("0.0002"), Decimal("0.0001")]


def test_moving_average_opening_value_joins_the_pool() -> None:
    lots = LotsBatch.from_lots([("L1", "A", day(1), units("4"), units("10"))])
    sales = SalesBatch.from_sales([("S1", "A", day(3), units("1")), ("S2", "A", day(4), units("3"))])
    # The pool carries 0.0004 more than its lot's 40: the average is still 10.0001 after rounding.
    result = both(Method.MOVING_AVERAGE, sales, lots, opening={"A": units("0.0004") * 10_000})
    assert [money(c) for c in result.sale_cogs.tolist()] == [Decimal("10.0001"), Decimal("30.0003")]


@pytest.mark.parametrize("method", METHODS)
def test_fractional_quantities(method: Method) -> None:
    lots = LotsBatch.from_lots(
        [("L1", "A", day(1), units("1.25"), units("3.3333")), ("L2", "A", day(1), units("0.7501"), units("2.0001")),
         ("L3", "A", day(2), units("2.5"), units("0.0001"))]
    )  # fmt: skip
    sales = SalesBatch.from_sales(
        [("S1", "A", day(2), units("0.3333")), ("S2", "A", day(3), units("1.6667")), ("S3", "A", day(4), units("2.5"))]
    )
    result = both(method, sales, lots)
    books = reference.cost(method, sales, lots)
    assert [money(c) for c in result.sale_cogs.tolist()] == [books.sale_cogs[i] for i in range(3)]
    assert result.lot_consumed.sum() == units("4.5")
    stock_in = Decimal("1.25") * Decimal("3.3333") + Decimal("0.7501") * Decimal("2.0001") + Decimal("0.00025")
    assert money(result.total_cogs) + books.closing_value["A"] == stock_in
    assert books.closing_quantity["A"] == Decimal("0.0001")


@pytest.mark.parametrize("method", METHODS)
def test_many_lots(method: Method) -> None:
    # 500 lots of 1 unit at 1..500 on successive instants, then one sale of 400 and one of 100.
    lots = LotsBatch.from_lots(
        [
            (f"L{k:04d}", "A", datetime(2024, 1, 1, 0, k // 60, k % 60, tzinfo=UTC), units("1"), units(str(k + 1)))
            for k in range(500)
        ]
    )
    sales = SalesBatch.from_sales([("S1", "A", day(1), units("400")), ("S2", "A", day(2), units("100"))])
    result = both(method, sales, lots)
    cogs = [money(c) for c in result.sale_cogs.tolist()]
    expected = {
        Method.FIFO: [Decimal(sum(range(1, 401))), Decimal(sum(range(401, 501)))],
        Method.LIFO: [Decimal(sum(range(101, 501))), Decimal(sum(range(1, 101)))],
        Method.MOVING_AVERAGE: [Decimal("250.5") * 400, Decimal("250.5") * 100],
    }[method]
    assert cogs == expected
    assert sum(cogs) == Decimal(sum(range(1, 501)))
    assert len(result.slice_sale) == 500


@pytest.mark.parametrize("method", METHODS)
def test_short_stock_is_reported_alike_by_every_method(method: Method) -> None:
    sales = SalesBatch.from_sales([("S1", "A", day(3), units("25")), ("S2", "B", day(3), units("1"))])
    result = both(method, sales, TWO_LOTS)
    assert [(e.row, e.reason) for e in result.errors] == [(1, INSUFFICIENT_STOCK), (2, INSUFFICIENT_STOCK)]
    assert result.errors == allocate(Method.FIFO, sales, TWO_LOTS).errors


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="standard"):
        allocate("standard", ISSUE_15, TWO_LOTS)
