"""Every costing method against the plain Decimal reference (tests/shared/costing/reference.py) on random
inputs, against its own one-sale-at-a-time implementation, and the conservation of quantity and value."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from unittest.mock import patch

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from shared.costing import Method, allocate, moving_average, reference_allocate
from shared.costing.fifo import FifoResult, Lot, LotsBatch, Sale, SalesBatch
from tests.shared.costing import reference
from tests.shared.runs.test_fifo_properties import BASE, PROPERTY_SETTINGS, inputs

methods = st.sampled_from(list(Method))
openings = st.dictionaries(st.sampled_from(["A", "B", "SKU-1"]), st.integers(-50_000, 50_000), max_size=2)


def money(scaled: int) -> Decimal:
    return Decimal(scaled).scaleb(-8)


def assert_same(fast: FifoResult, slow: FifoResult) -> None:
    assert fast.errors == slow.errors
    for name in ("slice_sale", "slice_lot", "slice_quantity", "slice_amount", "sale_cogs", "lot_consumed"):
        assert getattr(fast, name).tolist() == getattr(slow, name).tolist(), name


def _opening(method: Method, opening: dict[str, int]) -> dict[str, int] | None:
    return opening if method is Method.MOVING_AVERAGE else None


@PROPERTY_SETTINGS
@given(methods, inputs, openings)
def test_engine_matches_the_decimal_reference(
    method: Method, data: tuple[list[Sale], list[Lot]], opening: dict[str, int]
) -> None:
    sales, lots = SalesBatch.from_sales(data[0]), LotsBatch.from_lots(data[1])
    carried = _opening(method, opening)
    result = allocate(method, sales, lots, opening=carried)
    books = reference.cost(method.value, sales, lots, {k: money(v) for k, v in carried.items()} if carried else None)
    assert {int(sales.row[i]) for i in books.short} == {e.row for e in result.errors}
    if books.short:
        assert result.slice_sale.size == 0
        return
    assert [
        (int(i), int(j), Decimal(int(q)).scaleb(-4), money(int(a)))
        for i, j, q, a in zip(
            result.slice_sale.tolist(), result.slice_lot.tolist(), result.slice_quantity.tolist(),
            result.slice_amount.tolist(), strict=True,
        )
    ] == books.slices  # fmt: skip
    assert [money(int(c)) for c in result.sale_cogs.tolist()] == [
        books.sale_cogs.get(i, Decimal(0)) for i in range(len(sales))
    ]


@PROPERTY_SETTINGS
@given(methods, inputs, openings)
def test_engine_matches_its_plain_implementation(
    method: Method, data: tuple[list[Sale], list[Lot]], opening: dict[str, int]
) -> None:
    sales, lots = SalesBatch.from_sales(data[0]), LotsBatch.from_lots(data[1])
    carried = _opening(method, opening)
    assert_same(
        allocate(method, sales, lots, opening=carried), reference_allocate(method, sales, lots, opening=carried)
    )


# The unit cost in force from an earlier run, used at an instant inside the inputs' window (BASE + 0..48 h).
in_force = st.dictionaries(
    st.sampled_from(["A", "B", "C", "SKU-1"]),
    st.tuples(st.integers(0, 2_000_000), st.integers(0, 48).map(lambda h: int(BASE.timestamp() + h * 3600) * 10**6)),
    max_size=2,
)


@PROPERTY_SETTINGS
@given(inputs, openings, in_force, st.integers(0, 3))
def test_moving_average_ranks_vectorised_and_lot_by_lot_agree(
    data: tuple[list[Sale], list[Lot]], opening: dict[str, int], averages: dict[str, tuple[int, int]], least: int
) -> None:
    """The engine takes the k-th lot of every SKU in one vectorised step while at least WAVEFRONT_MIN_SKUS SKUs
    have one, then goes lot by lot: with a threshold of 0 or 1 every rank is vectorised, with 2 or 3 the ranks
    switch over part way (the default, 64, sends these small inputs lot by lot)."""
    sales, lots = SalesBatch.from_sales(data[0]), LotsBatch.from_lots(data[1])
    with patch.object(moving_average, "WAVEFRONT_MIN_SKUS", least):
        fast = allocate(Method.MOVING_AVERAGE, sales, lots, opening=opening, averages=averages)
    assert_same(fast, reference_allocate(Method.MOVING_AVERAGE, sales, lots, opening=opening, averages=averages))


@PROPERTY_SETTINGS
@given(methods, inputs)
def test_quantity_and_value_are_conserved(method: Method, data: tuple[list[Sale], list[Lot]]) -> None:
    sales, lots = SalesBatch.from_sales(data[0]), LotsBatch.from_lots(data[1])
    result = allocate(method, sales, lots)
    if not result.ok:
        return
    # Quantity: each sale is covered exactly, no lot gives more than it holds.
    per_sale = [0] * len(sales)
    for i, q in zip(result.slice_sale.tolist(), result.slice_quantity.tolist(), strict=True):
        per_sale[i] += q
    assert per_sale == sales.quantity.tolist()
    assert all(0 <= c <= q for c, q in zip(result.lot_consumed.tolist(), lots.quantity.tolist(), strict=True))
    assert sum(result.slice_amount.tolist(), 0) == result.total_cogs
    # Value: what came in is what was issued plus what is left on hand, per SKU; an empty SKU holds nothing.
    books = reference.cost(method.value, sales, lots)
    for sku in set(sales.sku):
        stock_in = sum(
            (
                Decimal(int(lots.quantity[j]) * int(lots.unit_cost[j])).scaleb(-8)
                for j in range(len(lots))
                if lots.sku[j] == sku
            ),
            Decimal(0),
        )
        issued = sum((money(int(result.sale_cogs[i])) for i in range(len(sales)) if sales.sku[i] == sku), Decimal(0))
        assert issued + books.closing_value[sku] == stock_in
        if books.closing_quantity[sku] == 0:
            assert books.closing_value[sku] == 0


@PROPERTY_SETTINGS
@given(inputs)
def test_moving_average_cost_lies_between_the_cheapest_and_dearest_lot(data: tuple[list[Sale], list[Lot]]) -> None:
    sales, lots = SalesBatch.from_sales(data[0]), LotsBatch.from_lots(data[1])
    result = allocate(Method.MOVING_AVERAGE, sales, lots)
    if not result.ok or not len(lots):
        return
    low, high = int(lots.unit_cost.min()), int(lots.unit_cost.max())
    for i in range(len(sales)):
        q = int(sales.quantity[i])
        # within rounding: the emptying sale's remainder is at most half a unit of 10**-4 per unit on hand
        assert low * q - q * 10_000 <= int(result.sale_cogs[i]) <= high * q + q * 10_000


def _subset(sales: SalesBatch, keep: list[int]) -> SalesBatch:
    return SalesBatch(
        row=sales.row[keep],
        sale_id=[sales.sale_id[i] for i in keep],
        sku=[sales.sku[i] for i in keep],
        sale_date=sales.sale_date[keep],
        quantity=sales.quantity[keep],
    )


@PROPERTY_SETTINGS
@given(methods, inputs, st.integers(0, 50))
def test_costing_in_two_runs_gives_the_books_of_one(
    method: Method, data: tuple[list[Sale], list[Lot]], cut_hours: int
) -> None:
    """What the pipeline hands a second run (lots' remaining quantities; for moving average the pool's
    carried value and the unit cost in force at the first run's latest sale) makes it cost as one run would."""
    sales, lots = SalesBatch.from_sales(data[0]), LotsBatch.from_lots(data[1])
    whole = allocate(method, sales, lots)
    if not whole.ok:
        return
    cut = np.datetime64(BASE.replace(tzinfo=None) + timedelta(hours=cut_hours), "us")
    first = [i for i in range(len(sales)) if sales.sale_date[i] < cut]
    second = [i for i in range(len(sales)) if sales.sale_date[i] >= cut]
    one = allocate(method, _subset(sales, first), lots)
    assert one.ok
    rest = LotsBatch(
        lots.row, lots.lot_id, lots.sku, lots.received_date, lots.quantity - one.lot_consumed, lots.unit_cost
    )
    opening: dict[str, int] = {}
    averages: dict[str, tuple[int, int]] = {}
    if method is Method.MOVING_AVERAGE:
        for j in range(len(lots)):
            opening[lots.sku[j]] = opening.get(lots.sku[j], 0) + int(one.lot_consumed[j]) * int(lots.unit_cost[j])
        for k, i in enumerate(first):
            opening[sales.sku[i]] = opening.get(sales.sku[i], 0) - int(one.sale_cogs[k])
        # the unit cost in force: the first slice of the first sale at the SKU's latest sale instant
        latest: dict[str, tuple[np.datetime64, str, int]] = {}
        for k, i in enumerate(first):
            key = (sales.sale_date[i], sales.sale_id[i], k)
            best = latest.get(sales.sku[i])
            if best is None or key[0] > best[0] or (key[0] == best[0] and key[1:] < best[1:]):
                latest[sales.sku[i]] = key
        for sku, (at, _, k) in latest.items():
            s = int(np.flatnonzero(one.slice_sale == k)[0])
            cost = int(one.slice_amount[s]) // int(one.slice_quantity[s])
            averages[sku] = (cost, int(at.astype("datetime64[us]").astype(np.int64)))
    two = allocate(method, _subset(sales, second), rest, opening=opening, averages=averages)
    assert two.ok
    split = dict(zip(first, one.sale_cogs.tolist(), strict=True)) | dict(
        zip(second, two.sale_cogs.tolist(), strict=True)
    )
    assert [split[i] for i in range(len(sales))] == whole.sale_cogs.tolist()
