"""Hand-checked FIFO allocations: every expected figure below was worked out on paper."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from shared.decimals import parse_scaled
from shared.runs.csvio import lots_from_records
from shared.runs.fifo import (
    INSUFFICIENT_STOCK,
    FifoResult,
    Lot,
    LotsBatch,
    Sale,
    SalesBatch,
    allocate,
    from_datetime64,
    reference_allocate,
    to_datetime64,
)


def qty(text: str) -> int:
    return parse_scaled(text, 4)


def cost(text: str) -> int:
    return parse_scaled(text, 4)


def amount(text: str) -> int:
    return parse_scaled(text, 8)


def at(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def both(sales: SalesBatch, lots: LotsBatch) -> FifoResult:
    """Run the vectorised engine and the reference; they must agree exactly."""
    fast = allocate(sales, lots)
    slow = reference_allocate(sales, lots)
    assert fast.errors == slow.errors
    for name in ("slice_sale", "slice_lot", "slice_quantity", "slice_amount", "sale_cogs", "lot_consumed"):
        assert getattr(fast, name).tolist() == getattr(slow, name).tolist(), name
    return fast


def slices(result: FifoResult) -> list[tuple[int, int, int, int]]:
    return list(
        zip(
            result.slice_sale.tolist(),
            result.slice_lot.tolist(),
            result.slice_quantity.tolist(),
            result.slice_amount.tolist(),
            strict=True,
        )
    )


def test_single_lot_covers_the_sale() -> None:
    sales = SalesBatch.from_sales([Sale("S1", "WIDGET-A", at("2024-07-20T10:00:00Z"), qty("100"))])
    lots = LotsBatch.from_lots([Lot("LOT001", "WIDGET-A", at("2024-07-01"), qty("500"), cost("11.00"))])

    result = both(sales, lots)

    assert result.ok
    assert slices(result) == [(0, 0, qty("100"), amount("1100"))]
    assert result.sale_cogs.tolist() == [amount("1100")]
    assert result.lot_consumed.tolist() == [qty("100")]
    assert result.total_cogs == amount("1100")
    assert result.total_quantity == qty("100")


def test_a_sale_drains_lots_oldest_first() -> None:
    sales = SalesBatch.from_sales(
        [
            Sale("S1", "A", at("2024-03-01"), qty("15")),
            Sale("S2", "A", at("2024-03-02"), qty("7")),
        ]
    )
    lots = LotsBatch.from_lots(
        [
            Lot("L-new", "A", at("2024-02-01"), qty("10"), cost("7.00")),
            Lot("L-old", "A", at("2024-01-01"), qty("10"), cost("5.00")),
            Lot("L-newest", "A", at("2024-02-15"), qty("10"), cost("9.00")),
        ]
    )

    result = both(sales, lots)

    # S1: 10 x 5.00 from L-old, 5 x 7.00 from L-new = 85.00
    # S2: 5 x 7.00 from L-new, 2 x 9.00 from L-newest = 53.00
    assert slices(result) == [
        (0, 1, qty("10"), amount("50")),
        (0, 0, qty("5"), amount("35")),
        (1, 0, qty("5"), amount("35")),
        (1, 2, qty("2"), amount("18")),
    ]
    assert result.sale_cogs.tolist() == [amount("85"), amount("53")]
    assert result.lot_consumed.tolist() == [qty("10"), qty("10"), qty("2")]


def test_freight_is_part_of_the_unit_cost() -> None:
    parsed = lots_from_records(
        [
            {
                "lot_id": "LOT001",
                "sku": "WIDGET-A",
                "received_date": "2024-07-01T00:00:00Z",
                "original_quantity": 500,
                "remaining_quantity": 500,
                "unit_price": 10.00,
                "freight_cost_per_unit": 1.25,
            }
        ]
    )
    assert parsed.errors == []
    sales = SalesBatch.from_sales([Sale("SALE001", "WIDGET-A", at("2024-07-20T10:00:00Z"), qty("100"))])

    result = both(sales, parsed.batch)

    assert parsed.batch.unit_cost.tolist() == [cost("11.25")]
    assert result.sale_cogs.tolist() == [amount("1125")]


def test_lots_received_after_the_sale_are_not_used() -> None:
    sales = SalesBatch.from_sales([Sale("S1", "A", at("2024-07-05"), qty("10"))])
    lots = LotsBatch.from_lots(
        [
            Lot("L1", "A", at("2024-07-01"), qty("5"), cost("1")),
            Lot("L2", "A", at("2024-07-06"), qty("100"), cost("1")),
        ]
    )

    result = both(sales, lots)

    assert [(e.row, e.field, e.reason, e.file) for e in result.errors] == [
        (1, "quantity_sold", INSUFFICIENT_STOCK, "sales")
    ]
    message = result.errors[0].message
    assert "'A'" in message
    assert "requested 10.0000" in message
    assert "available 5.0000" in message
    assert result.slice_sale.size == 0
    assert result.sale_cogs.tolist() == [0]


def test_a_later_sale_may_use_the_later_lot() -> None:
    sales = SalesBatch.from_sales(
        [Sale("S1", "A", at("2024-07-05"), qty("5")), Sale("S2", "A", at("2024-07-07"), qty("3"))]
    )
    lots = LotsBatch.from_lots(
        [
            Lot("L2", "A", at("2024-07-06"), qty("100"), cost("2")),
            Lot("L1", "A", at("2024-07-01"), qty("5"), cost("1")),
        ]
    )

    result = both(sales, lots)

    assert slices(result) == [(0, 1, qty("5"), amount("5")), (1, 0, qty("3"), amount("6"))]


def test_a_lot_received_at_the_same_instant_as_the_sale_is_usable() -> None:
    sales = SalesBatch.from_sales([Sale("S1", "A", at("2024-07-05T12:00:00+02:00"), qty("1"))])
    lots = LotsBatch.from_lots([Lot("L1", "A", at("2024-07-05T10:00:00Z"), qty("1"), cost("3"))])

    result = both(sales, lots)

    assert result.ok
    assert result.sale_cogs.tolist() == [amount("3")]


def test_fractional_quantities_keep_every_digit() -> None:
    sales = SalesBatch.from_sales(
        [Sale("S1", "A", at("2024-07-05"), qty("0.3333")), Sale("S2", "A", at("2024-07-05"), qty("1.5"))]
    )
    lots = LotsBatch.from_lots(
        [
            Lot("L1", "A", at("2024-07-01"), qty("1"), cost("3.3333")),
            Lot("L2", "A", at("2024-07-02"), qty("1"), cost("0.0001")),
        ]
    )

    result = both(sales, lots)

    # S1: 0.3333 x 3.3333 = 1.11098889
    # S2: 0.6667 x 3.3333 = 2.22231111 plus 0.8333 x 0.0001 = 0.00008333 -> 2.22239444
    assert result.sale_cogs.tolist() == [amount("1.11098889"), amount("2.22239444")]
    assert result.lot_consumed.tolist() == [qty("1"), qty("0.8333")]


def test_a_partly_consumed_lot_carries_into_the_next_run() -> None:
    first_sales = SalesBatch.from_sales([Sale("S1", "A", at("2024-07-02"), qty("4"))])
    first_lots = LotsBatch.from_lots([Lot("L1", "A", at("2024-07-01"), qty("10"), cost("2"))])
    first = both(first_sales, first_lots)
    assert first.lot_consumed.tolist() == [qty("4")]

    left = int(first_lots.quantity[0] - first.lot_consumed[0])
    second_sales = SalesBatch.from_sales([Sale("S2", "A", at("2024-07-09"), qty("8"))])
    second_lots = LotsBatch.from_lots(
        [
            Lot("L2", "A", at("2024-07-08"), qty("10"), cost("3"), row=1),
            Lot("L1", "A", at("2024-07-01"), left, cost("2"), row=0),
        ]
    )

    second = both(second_sales, second_lots)

    assert slices(second) == [(0, 1, qty("6"), amount("12")), (0, 0, qty("2"), amount("6"))]
    assert second.sale_cogs.tolist() == [amount("18")]


def test_an_exhausted_lot_takes_no_part() -> None:
    sales = SalesBatch.from_sales([Sale("S1", "A", at("2024-07-09"), qty("1"))])
    lots = LotsBatch.from_lots(
        [
            Lot("L0", "A", at("2024-07-01"), 0, cost("100"), row=0),
            Lot("L1", "A", at("2024-07-02"), qty("1"), cost("1")),
        ]
    )

    result = both(sales, lots)

    assert slices(result) == [(0, 1, qty("1"), amount("1"))]
    assert result.lot_consumed.tolist() == [0, qty("1")]


def test_every_short_sale_is_reported_together() -> None:
    sales = SalesBatch.from_sales(
        [
            Sale("S1", "A", at("2024-07-02"), qty("4"), row=1),
            Sale("S2", "B", at("2024-07-02"), qty("9"), row=2),
            Sale("S3", "NOPE", at("2024-07-02"), qty("1"), row=3),
            Sale("S4", "A", at("2024-07-03"), qty("7"), row=4),
            Sale("S5", "B", at("2024-07-03"), qty("1"), row=5),
        ]
    )
    lots = LotsBatch.from_lots(
        [
            Lot("LA", "A", at("2024-07-01"), qty("10"), cost("1")),
            Lot("LB", "B", at("2024-07-01"), qty("5"), cost("1")),
        ]
    )

    result = both(sales, lots)

    assert [(e.row, e.reason) for e in result.errors] == [
        (2, INSUFFICIENT_STOCK),
        (3, INSUFFICIENT_STOCK),
        (4, INSUFFICIENT_STOCK),
        (5, INSUFFICIENT_STOCK),
    ]
    by_row = {e.row: e.message for e in result.errors}
    assert "requested 9.0000, available 5.0000" in by_row[2]
    assert "'NOPE'" in by_row[3]
    assert "available 0.0000" in by_row[3]
    assert "requested 7.0000, available 6.0000" in by_row[4]
    # S2 fell short, so nothing of B is left for S5 even though S2 took none of it.
    assert "requested 1.0000, available 0.0000" in by_row[5]
    assert result.slice_sale.size == 0
    assert result.lot_consumed.tolist() == [0, 0]


def test_ties_are_broken_by_id_then_input_position() -> None:
    day = at("2024-07-01")
    sales = SalesBatch.from_sales(
        [
            Sale("S-b", "A", day + timedelta(days=1), qty("1")),
            Sale("S-a", "A", day + timedelta(days=1), qty("2")),
        ]
    )
    lots = LotsBatch.from_lots(
        [
            Lot("L-b", "A", day, qty("2"), cost("5")),
            Lot("L-a", "A", day, qty("1"), cost("3")),
        ]
    )

    result = both(sales, lots)

    # S-a goes first and takes L-a (1 @ 3) and 1 of L-b (@ 5); S-b takes the last of L-b.
    assert slices(result) == [
        (1, 1, qty("1"), amount("3")),
        (1, 0, qty("1"), amount("5")),
        (0, 0, qty("1"), amount("5")),
    ]


@pytest.mark.parametrize("prefix", ["", "x" * 300, "nul\x00"])
def test_tied_sales_follow_their_ids_whatever_the_ids_look_like(prefix: str) -> None:
    day = at("2024-07-01")
    ids = [f"{prefix}S3", f"{prefix}S1", f"{prefix}S2", f"{prefix}S1"]
    sales = SalesBatch.from_sales([Sale(sale_id, "A", day, qty("1")) for sale_id in ids])
    lots = LotsBatch.from_lots([Lot("L1", "A", day, qty("4"), cost("1"))])

    result = both(sales, lots)

    assert result.slice_sale.tolist() == [1, 3, 2, 0]


def test_slices_are_ordered_by_sku() -> None:
    day = at("2024-07-01")
    sales = SalesBatch.from_sales([Sale("S1", "b", day, qty("1")), Sale("S2", "B", day, qty("1"))])
    lots = LotsBatch.from_lots([Lot("L1", "b", day, qty("1"), cost("1")), Lot("L2", "B", day, qty("1"), cost("2"))])

    result = both(sales, lots)

    assert result.slice_sale.tolist() == [1, 0]  # "B" sorts before "b"


def test_no_sales_is_an_empty_result() -> None:
    lots = LotsBatch.from_lots([Lot("L1", "A", at("2024-07-01"), qty("1"), cost("1"))])

    result = both(SalesBatch.empty(), lots)

    assert result.ok
    assert result.slice_sale.size == 0
    assert result.lot_consumed.tolist() == [0]


def test_no_lots_at_all_is_insufficient_stock() -> None:
    sales = SalesBatch.from_sales([Sale("S1", "A", at("2024-07-01"), qty("1"))])

    result = both(sales, LotsBatch.empty())

    assert [e.reason for e in result.errors] == [INSUFFICIENT_STOCK]


def test_amounts_beyond_int64_fall_back_to_exact_integers() -> None:
    huge_quantity = qty("10000000000")  # 10**10 units
    huge_cost = cost("100000000")  # 10**8 per unit
    sales = SalesBatch.from_sales([Sale("S1", "A", at("2024-07-02"), huge_quantity)])
    lots = LotsBatch.from_lots([Lot("L1", "A", at("2024-07-01"), huge_quantity, huge_cost)])

    result = both(sales, lots)

    assert result.sale_cogs.tolist() == [huge_quantity * huge_cost]
    assert result.total_cogs == 10**18 * 10**8


def test_dates_centuries_apart_with_many_skus() -> None:
    # Microsecond dates spanning the calendar cannot be packed next to a SKU code: the engine ranks
    # the instants instead.
    early = datetime(1, 1, 2, tzinfo=UTC)
    late = datetime(9999, 12, 30, 0, 0, 0, 1, tzinfo=UTC)
    skus = [f"SKU-{i}" for i in range(40)]
    sales = SalesBatch.from_sales([Sale(f"S-{sku}", sku, late, qty("1")) for sku in skus])
    lots = LotsBatch.from_lots([Lot(f"L-{sku}", sku, early, qty("2"), cost("1.5")) for sku in skus])

    result = both(sales, lots)

    assert result.sale_cogs.tolist() == [amount("1.5")] * len(skus)


def test_microsecond_dates_over_millennia_use_the_argsort_path() -> None:
    # Keys of about 2**61 leave no room to pack the input position beside them.
    start = datetime(1000, 1, 1, tzinfo=UTC)
    end = datetime(9000, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    skus = ["A", "B", "C", "D", "E", "F"]
    sales = SalesBatch.from_sales(
        [Sale(f"S{i}", sku, end, qty("1")) for i, sku in enumerate(skus)] + [Sale("S", "A", end, qty("1"))]
    )
    lots = LotsBatch.from_lots([Lot(f"L-{sku}", sku, start, qty("2"), cost("1")) for sku in skus])

    result = both(sales, lots)

    assert result.ok
    assert result.slice_sale.tolist() == [6, 0, 1, 2, 3, 4, 5]


def test_invalid_batches_are_rejected() -> None:
    day = at("2024-07-01")
    lots = LotsBatch.from_lots([Lot("L1", "A", day, qty("1"), cost("1"))])
    with pytest.raises(ValueError, match="positive"):
        allocate(SalesBatch.from_sales([Sale("S1", "A", day, 0)]), lots)
    with pytest.raises(ValueError, match="negative"):
        allocate(SalesBatch.from_sales([Sale("S1", "A", day, 1)]), LotsBatch.from_lots([Lot("L", "A", day, -1, 1)]))
    sales = SalesBatch.from_sales([Sale("S1", "A", day, 1)])
    broken = SalesBatch(
        row=sales.row, sale_id=sales.sale_id, sku=[], sale_date=sales.sale_date, quantity=sales.quantity
    )
    with pytest.raises(ValueError, match="lengths"):
        allocate(broken, lots)


def test_datetime_conversions_round_trip_in_utc() -> None:
    aware = datetime(2024, 7, 20, 12, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    converted = to_datetime64(aware)
    assert converted == np.datetime64("2024-07-20T10:30:00.123456")
    assert from_datetime64(converted) == aware
    assert from_datetime64(converted).tzinfo is UTC
    assert to_datetime64(datetime(2024, 7, 20)) == np.datetime64("2024-07-20T00:00:00")


def test_batches_accept_plain_tuples() -> None:
    day = at("2024-07-01")
    sales = SalesBatch.from_sales([("S1", "A", day, 5, 7)])
    lots = LotsBatch.from_lots([("L1", "A", day, 5, 2)])

    assert sales.row.tolist() == [7]
    assert lots.row.tolist() == [1]
    assert both(sales, lots).sale_cogs.tolist() == [10]
