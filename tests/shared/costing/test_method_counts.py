"""Counts on a moving-average SKU move at the pool's unit cost in force, not at the lots' own costs, so the pool's
value stays what the method says (hand-checked: 10 @ 10 and 10 @ 20, average 15; a count loss of 4 leaves at
60, where FIFO's lots say 40). A gain joins at the average; a loss that empties the pool takes its whole value.
The API is served in process; jobs run through the real job runner."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import redis

from shared.config import get_settings
from shared.jobs import runner
from shared.ledger import verify
from shared.registry import TABLE
from tests.support import Api, make_tenant, query, seed_master_data


@pytest.fixture
def books(in_process: str, service_urls: dict[str, str]) -> Any:
    client, settings = redis.Redis.from_url(service_urls["redis_url"]), get_settings()
    tenant_id, owner = make_tenant(in_process, prefix="mac")
    md = seed_master_data(owner, ("A", "B"))

    def drain() -> None:
        runner.drain_tenant(tenant_id, worker="ma-count-test", redis_client=client, settings=settings, kinds=TABLE)

    def post(path: str, body: dict[str, Any]) -> None:
        answer = owner.post(path, json=body)
        assert answer.status_code == 202, answer.text
        drain()
        job = owner.get(f"/jobs/{answer.json()['job_id']}").json()
        assert job["status"] == "completed", job

    def count(at: str, **counted: str) -> None:
        lines = [{"sku": sku, "counted_quantity": q} for sku, q in counted.items()]
        post("/counts", {"bin_id": md.bin_id, "counted_at": at, "lines": lines})

    assert owner.put("/valuation-methods/A", json={"method": "moving_average"}).status_code == 200
    for sku in ("A", "B"):  # B is not held to moving average: its counts move at lot cost
        for n, (day, cost) in enumerate((("2024-05-01", "10"), ("2024-05-02", "20")), 1):
            line = {"sku": sku, "bin_id": md.bin_id, "lot_id": f"{sku}{n}", "quantity": "10", "unit_cost": cost}
            post("/receipts", {"vendor_id": md.vendor_id, "received_at": f"{day}T00:00:00Z", "lines": [line]})
    return tenant_id, owner, post, count


def _valuation(owner: Api) -> dict[str, tuple[Decimal, Decimal]]:
    items = owner.get("/reports/valuation").json()["items"]
    return {r["sku"]: (Decimal(r["quantity"]), Decimal(r["value"])) for r in items}


def _count_amounts(tenant_id: str) -> list[tuple[str, Decimal, Decimal]]:
    rows = query(
        "SELECT sku, sum(quantity), sum(amount) FROM ledger_events WHERE event_type = 'ADJUSTMENT' "
        "GROUP BY reference, sku ORDER BY min(seq), sku",
        {},
        tenant_id,
    )
    return [(r[0], Decimal(r[1]), Decimal(r[2])) for r in rows]


def test_count_differences_on_a_moving_average_sku_move_at_the_pool_average(books: Any) -> None:
    tenant_id, owner, post, count = books
    count("2024-05-03T00:00:00Z", A="16", B="16")
    # A leaves at the average 15 (4 x 15 = 60; the pool keeps 240 for 16, still 15 a unit); B at its oldest lot.
    assert _count_amounts(tenant_id) == [("A", Decimal(-4), Decimal(-60)), ("B", Decimal(-4), Decimal(-40))]
    assert _valuation(owner) == {"A": (Decimal(16), Decimal(240)), "B": (Decimal(16), Decimal(260))}
    shrink = owner.get("/reports/shrink-summary", params={"sku": "A"}).json()["items"]
    assert [(r["sku"], Decimal(r["shrink_value"])) for r in shrink] == [("A", Decimal(-60))]

    sale = {"sale_id": "S1", "sku": "A", "sale_date": "2024-05-04T00:00:00Z", "quantity_sold": "8"}
    post("/runs", {"mode": "moving_average", "sales_data": [sale]})
    assert Decimal(owner.get("/runs").json()["items"][0]["total_cogs"]) == 120  # 8 x 15: the pool is unchanged
    assert _valuation(owner)["A"] == (Decimal(8), Decimal(120))

    count("2024-05-05T00:00:00Z", A="10")  # a gain of 2 joins at the average in force, 15
    assert _count_amounts(tenant_id)[-1] == ("A", Decimal(2), Decimal(30))
    assert query("SELECT unit_cost FROM lots WHERE lot_id LIKE 'ADJ-%'", {}, tenant_id) == [(Decimal(15),)]
    assert _valuation(owner)["A"] == (Decimal(10), Decimal(150))

    count("2024-05-06T00:00:00Z", A="0")  # the loss empties the pool and takes its whole value
    assert _count_amounts(tenant_id)[-1] == ("A", Decimal(-10), Decimal(-150))
    assert "A" not in _valuation(owner)
    assert query("SELECT sum(amount) FROM ledger_events WHERE sku = 'A'", {}, tenant_id) == [(Decimal(0),)]
    with verify.snapshot(tenant_id) as session:
        result = verify.verify_ledger(session, tenant_id)
    assert result.ok, result.differences
