"""Invariants of the FIFO engine on random inputs, with the deque reference as the oracle."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.journals.entries import JOURNAL_FORMATS, GroupBy, build_journal, render_journal, sale_costs
from shared.runs.fifo import FifoResult, Lot, LotsBatch, Sale, SalesBatch, allocate, reference_allocate
from tests.tier import examples

BASE = datetime(2024, 1, 1, tzinfo=UTC)
PROPERTY_SETTINGS = settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Few distinct values so that ties in SKU, date and id are common.
skus = st.sampled_from(["A", "B", "C", "b", "SKU-1", "SKU-2"])
ids = st.text(alphabet="xyz", min_size=1, max_size=2)
instants = st.builds(
    lambda hours, micros: BASE + timedelta(hours=hours, microseconds=micros),
    st.integers(0, 48),
    st.sampled_from([0, 0, 0, 1, 500_000]),
)
quantities = st.one_of(st.integers(1, 40).map(lambda units: units * 10_000), st.integers(1, 400_000))
unit_costs = st.one_of(st.integers(0, 2_000_000), st.sampled_from([0, 1, 33_333, 10_000]))

sale_lists = st.lists(st.builds(Sale, ids, skus, instants, quantities), max_size=25)
lot_lists = st.lists(
    st.builds(
        Lot,
        ids,
        skus,
        instants,
        st.one_of(quantities, st.just(0)),
        unit_costs,
        st.sampled_from([None, 0]),
    ),
    max_size=25,
)


@st.composite
def stocked_inputs(draw: st.DrawFn) -> tuple[list[Sale], list[Lot]]:
    """Random sales plus random lots, topped up with early lots covering each SKU's demand."""
    sales = draw(sale_lists)
    lots = draw(lot_lists)
    demand: dict[str, int] = defaultdict(int)
    for sale in sales:
        demand[sale.sku] += sale.quantity
    for sku, total in sorted(demand.items()):
        cuts = sorted(draw(st.lists(st.integers(0, total), max_size=2)))
        bounds = [0, *cuts, total]
        for low, high in pairwise(bounds):
            lots.append(
                Lot(
                    draw(ids),
                    sku,
                    BASE - timedelta(hours=draw(st.integers(0, 5))),
                    high - low + draw(st.sampled_from([0, 0, 1, 10_000])),
                    draw(unit_costs),
                    draw(st.sampled_from([None, 0])),
                )
            )
    return sales, draw(st.permutations(lots))


inputs = st.one_of(st.tuples(sale_lists, lot_lists), stocked_inputs())


def assert_same(fast: FifoResult, slow: FifoResult) -> None:
    assert fast.errors == slow.errors
    for name in ("slice_sale", "slice_lot", "slice_quantity", "slice_amount", "sale_cogs", "lot_consumed"):
        assert getattr(fast, name).tolist() == getattr(slow, name).tolist(), name


def fifo_position(lots: LotsBatch) -> dict[int, tuple[str, np.datetime64, str, int]]:
    return {j: (lots.sku[j], lots.received_date[j], lots.lot_id[j], j) for j in range(len(lots))}


@PROPERTY_SETTINGS
@given(inputs)
def test_engine_matches_the_reference(data: tuple[list[Sale], list[Lot]]) -> None:
    sales_list, lots_list = data
    sales, lots = SalesBatch.from_sales(sales_list), LotsBatch.from_lots(lots_list)
    assert_same(allocate(sales, lots), reference_allocate(sales, lots))


@PROPERTY_SETTINGS
@given(inputs)
def test_quantity_and_cost_are_conserved(data: tuple[list[Sale], list[Lot]]) -> None:
    sales_list, lots_list = data
    sales, lots = SalesBatch.from_sales(sales_list), LotsBatch.from_lots(lots_list)
    result = allocate(sales, lots)
    if not result.ok:
        assert result.slice_sale.size == 0
        return

    sold: dict[int, int] = defaultdict(int)
    taken: dict[int, int] = defaultdict(int)
    for i, j, quantity, amount in zip(
        result.slice_sale.tolist(),
        result.slice_lot.tolist(),
        result.slice_quantity.tolist(),
        result.slice_amount.tolist(),
        strict=True,
    ):
        assert quantity > 0
        assert amount == quantity * int(lots.unit_cost[j])
        assert sales.sku[i] == lots.sku[j]
        sold[i] += quantity
        taken[j] += quantity
    assert [sold[i] for i in range(len(sales))] == sales.quantity.tolist()
    assert [taken[j] for j in range(len(lots))] == result.lot_consumed.tolist()
    assert (result.lot_consumed <= lots.quantity).all()
    assert sum(result.slice_amount.tolist()) == sum(result.sale_cogs.tolist()) == result.total_cogs


@PROPERTY_SETTINGS
@given(inputs)
def test_consumption_respects_dates_and_fifo_order(data: tuple[list[Sale], list[Lot]]) -> None:
    sales_list, lots_list = data
    sales, lots = SalesBatch.from_sales(sales_list), LotsBatch.from_lots(lots_list)
    result = allocate(sales, lots)
    if not result.ok:
        return
    position = fifo_position(lots)

    for i, j in zip(result.slice_sale.tolist(), result.slice_lot.tolist(), strict=True):
        assert lots.received_date[j] <= sales.sale_date[i]

    # Within a SKU, consumed lots form a FIFO prefix: all full except possibly the last one used.
    by_sku: dict[str, list[int]] = defaultdict(list)
    for j in sorted(range(len(lots)), key=position.__getitem__):
        by_sku[lots.sku[j]].append(j)
    for order in by_sku.values():
        consumed = [int(result.lot_consumed[j]) for j in order]
        available = [int(lots.quantity[j]) for j in order]
        used = [k for k, c in enumerate(consumed) if c > 0]
        if used:
            last = used[-1]
            assert all(consumed[k] == available[k] for k in range(last))
            assert all(c == 0 for c in consumed[last + 1 :])

    # Slices come grouped by SKU, then in sale order, with lots in FIFO order within each SKU.
    keys = [
        (sales.sku[i], sales.sale_date[i], sales.sale_id[i], i, position[j])
        for i, j in zip(result.slice_sale.tolist(), result.slice_lot.tolist(), strict=True)
    ]
    assert keys == sorted(keys)


@settings(max_examples=examples(25), deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 3000),
    st.integers(1, 60),
    st.sampled_from([1, 60, 86_400]),
    st.booleans(),
)
def test_engine_matches_the_reference_on_larger_inputs(
    seed: int, n_sales: int, n_skus: int, resolution: int, scarce: bool
) -> None:
    rng = np.random.default_rng(seed)
    n_lots = max(1, n_sales // 4)
    names = [f"SKU-{k:03d}" for k in range(n_skus)]
    start = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64)
    step = resolution * 1_000_000

    lot_sku = rng.integers(0, n_skus, n_lots)
    lot_qty = rng.integers(0, 50, n_lots) * 10_000 + rng.integers(0, 2, n_lots) * rng.integers(0, 9_999, n_lots)
    stock = np.bincount(lot_sku, weights=lot_qty, minlength=n_skus)
    sale_sku = rng.integers(0, n_skus, n_sales)
    demand = np.bincount(sale_sku, minlength=n_skus)
    share = stock / np.maximum(demand, 1) * (1.3 if scarce else 0.5)
    sale_qty = np.maximum(1, (share[sale_sku] * rng.uniform(0.2, 1.0, n_sales)).astype(np.int64))

    sales = SalesBatch(
        row=np.arange(1, n_sales + 1, dtype=np.int64),
        sale_id=[f"S{k}" for k in rng.integers(0, n_sales, n_sales).tolist()],
        sku=[names[k] for k in sale_sku.tolist()],
        sale_date=(start + rng.integers(20, 40, n_sales) * step).astype("datetime64[us]"),
        quantity=sale_qty,
    )
    lots = LotsBatch(
        row=np.arange(1, n_lots + 1, dtype=np.int64),
        lot_id=[f"L{k}" for k in rng.integers(0, n_lots, n_lots).tolist()],
        sku=[names[k] for k in lot_sku.tolist()],
        received_date=(start + rng.integers(0, 30, n_lots) * step).astype("datetime64[us]"),
        quantity=lot_qty.astype(np.int64),
        unit_cost=rng.integers(0, 5_000_000, n_lots),
    )

    assert_same(allocate(sales, lots), reference_allocate(sales, lots))


@PROPERTY_SETTINGS
@given(stocked_inputs(), st.sampled_from(("date", "sale")), st.booleans())
def test_a_run_journal_balances_and_matches_its_cogs(
    data: tuple[list[Sale], list[Lot]], group_by: GroupBy, reversing: bool
) -> None:
    sales_list, lots_list = data
    sales, lots = SalesBatch.from_sales(sales_list), LotsBatch.from_lots(lots_list)
    result = allocate(sales, lots)
    if not result.ok:
        return
    entries = build_journal("run-1", sale_costs(sales, result), reversing=reversing, group_by=group_by)
    for entry in entries:
        assert sum(line.debit for line in entry.lines) == sum(line.credit for line in entry.lines) > 0
    # Rounding once per group keeps each group within half a cent of its exact COGS (there are at
    # most as many groups as sales; groups that round to nothing have no entry).
    total_cents = sum(entry.amount for entry in entries)
    assert abs(total_cents * 10**6 - result.total_cogs) <= len(sales) * 10**6 // 2
    for fmt in JOURNAL_FORMATS:
        assert render_journal(entries, fmt).content
