"""Property (issue 15): in `repost` mode, the same receipts and sales arriving in any order give the same final
books as costing them in date order from scratch: every sale's COGS and every lot's balance, to the unit, under
every costing method (FIFO, LIFO, moving average: the SKUs are held to the method and every run costs by it).

Each example posts its entries for SKU `A<n>` in the drawn arrival order (receipts dated anywhere, sales
possibly before already-costed ones), draining the tenant's ledger stream after each (so reposts run as they
would behind each entry), and the accepted ones again for SKU `B<n>` in date order, where nothing is ever
backdated. A sale that arrives before the stock it needs is refused (INSUFFICIENT_STOCK, as today) and is in
neither book. The method's plain reference implementation (`shared.costing.reference_allocate`, one sale at a
time; and a hand-written FIFO for FIFO) over the accepted entries is checked as well, and `asora ledger verify`
passes."""

from __future__ import annotations

import itertools
from collections import deque
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from shared import costing
from shared.config import get_settings
from shared.costing.fifo import LotsBatch, SalesBatch
from shared.jobs import runner
from shared.ledger import verify
from shared.registry import TABLE
from tests.support import MasterData, create, make_tenant, query, seed_master_data
from tests.tier import examples

COUNTER = itertools.count()


@pytest.fixture(scope="module")
def books(in_process, service_urls):
    """One tenant in `repost` mode for every example (each example has SKUs of its own)."""
    tenant_id, owner = make_tenant(in_process, prefix="bkp")
    assert owner.patch("/settings", json={"backdated_entries": "repost"}).status_code == 200
    md = seed_master_data(owner, ("SEED",))
    client, cfg = redis.Redis.from_url(service_urls["redis_url"]), get_settings()

    def drain() -> None:
        for _ in range(5):
            runner.drain_tenant(tenant_id, worker="backdated-property", redis_client=client, settings=cfg, kinds=TABLE)
            if not query("SELECT 1 FROM jobs WHERE status IN ('queued', 'running')", {}, tenant_id):
                return
        raise AssertionError("jobs are still queued")

    return tenant_id, owner, md, drain


def _day(n: int) -> str:
    return f"2024-05-{10 + n:02d}T00:00:00Z"


lots_st = st.lists(st.tuples(st.integers(0, 5), st.integers(1, 6), st.integers(1, 30)), min_size=1, max_size=4)
sales_st = st.lists(st.tuples(st.integers(0, 5), st.integers(1, 6)), min_size=1, max_size=4)


def _post(owner: Any, md: MasterData, sku: str, entry: tuple[Any, ...], drain: Any, method: str) -> bool:
    """Post one entry (("lot", id, day, qty, cost) or ("sale", id, day, qty)) and run it; whether it was taken."""
    if entry[0] == "lot":
        _, lot_id, day, qty, cost = entry
        line = {
            "sku": sku,
            "bin_id": md.bin_id,
            "lot_id": f"{sku}:{lot_id}",
            "quantity": str(qty),
            "unit_cost": str(cost),
        }
        answer = owner.post("/receipts", json={"vendor_id": md.vendor_id, "received_at": _day(day), "lines": [line]})
    else:
        _, sale_id, day, qty = entry
        sale = {"sale_id": f"{sku}:{sale_id}", "sku": sku, "sale_date": _day(day), "quantity_sold": str(qty)}
        answer = owner.post("/runs", json={"mode": method, "sales_data": [sale]})
    assert answer.status_code == 202, answer.text
    drain()
    status = query("SELECT status, error FROM jobs WHERE id = :j", {"j": answer.json()["job_id"]}, "*")[0]
    if entry[0] == "lot":
        assert status[0] == "completed", status
        return True
    assert status[0] == "completed" or status[1]["reason"] == "INSUFFICIENT_STOCK", status
    return bool(status[0] == "completed")


def _final(tenant_id: str, sku: str) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """(COGS by sale, balance by lot) of the SKU, from the ledger and the lots."""
    cogs = query(
        "SELECT reference, -sum(amount) FROM ledger_events WHERE sku = :s "
        "AND event_type IN ('ISSUE', 'COST_ADJUSTMENT', 'REVERSAL') GROUP BY reference",
        {"s": sku},
        tenant_id,
    )
    lots = query("SELECT lot_id, remaining_quantity FROM lots WHERE sku = :s", {"s": sku}, tenant_id)
    return {r[0].split(":", 1)[1]: r[1] for r in cogs}, {r[0].split(":", 1)[1]: r[1] for r in lots}


def _plain_fifo(entries: list[tuple[Any, ...]]) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """FIFO by hand: lots by (day, id), sales by (day, id), a sale takes lots received on or before its day."""
    lots = sorted((e for e in entries if e[0] == "lot"), key=lambda e: (e[2], e[1]))
    queue = deque([e[1], e[2], e[3], e[4]] for e in lots)
    cogs: dict[str, Decimal] = {}
    for _, sale_id, day, qty in sorted((e for e in entries if e[0] == "sale"), key=lambda e: (e[2], e[1])):
        need, cost = qty, 0
        for head in queue:
            if need == 0 or head[1] > day:
                break
            take = min(need, head[2])
            head[2] -= take
            need -= take
            cost += take * head[3]
        assert need == 0, "the accepted sales are coverable in date order"
        cogs[sale_id] = Decimal(cost)
    return cogs, {lot_id: Decimal(left) for lot_id, _, left, _ in queue}


def _reference(method: str, entries: list[tuple[Any, ...]]) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """(COGS by sale, balance by lot) by the method's plain reference engine, all entries in one go."""
    lots = [e for e in entries if e[0] == "lot"]
    sales = [e for e in entries if e[0] == "sale"]
    at = [datetime(2024, 5, 10 + d, tzinfo=UTC) for d in range(7)]
    sb = SalesBatch.from_sales((sid, "X", at[day], qty * 10**4) for _, sid, day, qty in sales)
    lb = LotsBatch.from_lots((lid, "X", at[day], qty * 10**4, cost * 10**4) for _, lid, day, qty, cost in lots)
    result = costing.reference_allocate(method, sb, lb)
    assert result.ok, result.errors
    cogs = {e[1]: Decimal(int(c)).scaleb(-8) for e, c in zip(sales, result.sale_cogs.tolist(), strict=True)}
    left = {
        e[1]: Decimal(e[3] * 10**4 - int(c)).scaleb(-4) for e, c in zip(lots, result.lot_consumed.tolist(), strict=True)
    }
    return cogs, left


# Each example is a few dozen jobs on the real runner: few examples, and no shrinking (minutes per step here).
# The fast tier draws 4 per method beside the explicit example (a third of the full budget).
@settings(
    max_examples=examples(12, fast=4),
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(lots=lots_st, sales=sales_st, keys=st.lists(st.integers(0, 20), min_size=8, max_size=8))
# The example: L1 (10 @ 10) on day 1, C1 (5) on day 3, then L0 (5 @ 20) dated day 0, then C2 (5) on day 4.
@example(lots=[(0, 5, 20), (1, 10, 10)], sales=[(3, 5), (4, 5)], keys=[2, 0, 1, 3, 0, 0, 0, 0])
@pytest.mark.parametrize("method", ["fifo", "lifo", "moving_average"])
def test_repost_gives_the_books_of_costing_in_date_order_from_scratch(books, method, lots, sales, keys):
    tenant_id, owner, md, drain = books
    n = next(COUNTER)
    entries: list[tuple[Any, ...]] = [("lot", f"L{i}", d, q, c) for i, (d, q, c) in enumerate(lots)]
    entries += [("sale", f"S{i}", d, q) for i, (d, q) in enumerate(sales)]
    arrival = [entries[i] for i in sorted(range(len(entries)), key=lambda i: (keys[i], i))]
    sku_a, sku_b = f"A{n}", f"B{n}"
    for sku in (sku_a, sku_b):
        create(owner, "/items", {"sku": sku, "name": sku, "category_id": md.category_id, "default_bin_id": md.bin_id})
        assert owner.put(f"/valuation-methods/{sku}", json={"method": method}).status_code == 200

    accepted = [e for e in arrival if _post(owner, md, sku_a, e, drain, method)]
    # B: the same accepted entries in date order (a day's receipts before its sales): never backdated.
    for entry in sorted(accepted, key=lambda e: (e[2], e[0] != "lot", e[1])):
        assert _post(owner, md, sku_b, entry, drain, method), entry

    a_cogs, a_lots = _final(tenant_id, sku_a)
    b_cogs, b_lots = _final(tenant_id, sku_b)
    assert a_cogs == b_cogs
    assert a_lots == b_lots
    assert (a_cogs, a_lots) == _reference(method, accepted)
    if method == "fifo":
        assert (a_cogs, a_lots) == _plain_fifo(accepted)
    reposts = query("SELECT payload, result FROM jobs WHERE kind = 'repost'", {}, tenant_id)
    # In date order nothing is backdated; a sale at the instant of a costed one queues a repost with nothing to do.
    assert all(r.result["events"] == 0 for r in reposts if sku_b in r.payload["skus"])
    # A repost of A's SKU was queued exactly when a receipt or sale arrived after a sale dated at or after it.
    position = {e[1]: k for k, e in enumerate(accepted)}
    backdated = any(
        sale[0] == "sale" and position[entry[1]] > position[sale[1]] and entry[2] <= sale[2]
        for entry in accepted
        for sale in accepted
    )
    assert backdated == any(sku_a in r.payload["skus"] for r in reposts)
    with verify.snapshot(tenant_id) as session:
        result = verify.verify_ledger(session, tenant_id)
    assert result.ok, result.differences
