"""A small run (at most `SMALL_WRITE_ROWS` sales) writes its per-sale rows and slices in one multi-row INSERT and
checks its sale ids with `= ANY`; a larger one uses COPY and a scratch table. Both paths must record the same
rows and refuse the same duplicates."""

from __future__ import annotations

from decimal import Decimal

import pytest
import redis

from shared.config import get_settings
from shared.copyio import SMALL_WRITE_ROWS
from shared.jobs import runner
from shared.registry import TABLE
from tests.support import lot, make_tenant, query, sale, seed_items, submit_run_direct

SKU = "WP-1"


def _drain(redis_url: str, tenant_id: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        runner.drain_tenant(tenant_id, worker="write-paths", redis_client=client, settings=get_settings(), kinds=TABLE)
    finally:
        client.close()


def _sales(n: int, prefix: str, day: int = 5) -> list[dict[str, str]]:
    return [sale(f"{prefix}-{i:05d}", SKU, f"2024-07-{day:02d}T10:00:00Z", "1") for i in range(n)]


@pytest.mark.parametrize("n", [3, SMALL_WRITE_ROWS + 1], ids=["insert", "copy"])
def test_both_write_paths_record_the_same_rows_and_refuse_duplicates(in_process, service_urls, n):
    tenant_id, _ = make_tenant(in_process, prefix="wpath")
    seed_items(tenant_id, [SKU])
    lots = [lot("L-A", SKU, "2024-07-01T00:00:00Z", str(n + 5), "2.50", "0.25")]

    dry, _ = submit_run_direct(tenant_id, _sales(n, "d"), lots, dry_run=True)
    run, _ = submit_run_direct(tenant_id, _sales(n, "s"), lots)
    _drain(service_urls["redis_url"], tenant_id)

    [(status,)] = query("SELECT status FROM runs WHERE id = :r", {"r": dry}, tenant_id)
    assert status == "validated"
    rows = query(
        "SELECT sale_id, sku, sale_date, quantity, cogs FROM run_sales WHERE run_id = :r ORDER BY sale_id",
        {"r": dry},
        tenant_id,
    )
    assert [r[0] for r in rows] == [f"d-{i:05d}" for i in range(n)]
    assert {(r[1], r[2].isoformat(), r[3], r[4]) for r in rows} == {
        (SKU, "2024-07-05T10:00:00+00:00", Decimal("1"), Decimal("2.75"))
    }
    slices = query(
        "SELECT position, sale_id, lot_id, sku, quantity, unit_cost, amount FROM run_allocations"
        " WHERE run_id = :r ORDER BY position",
        {"r": dry},
        tenant_id,
    )
    assert [s[0] for s in slices] == list(range(1, n + 1))
    assert sorted(s[1] for s in slices) == [f"d-{i:05d}" for i in range(n)]
    assert {s[2:] for s in slices} == {("L-A", SKU, Decimal("1"), Decimal("2.75"), Decimal("2.75"))}

    [(status, total)] = query("SELECT status, total_cogs FROM runs WHERE id = :r", {"r": run}, tenant_id)
    assert (status, total) == ("completed", Decimal("2.75") * n)
    assert query("SELECT count(*) FROM run_sales WHERE run_id = :r", {"r": run}, tenant_id) == [(n,)]

    # A sale id the live run costed is refused; one only the dry run used is not; the boundary holds.
    again, _ = submit_run_direct(tenant_id, [*_sales(n, "s")[-1:], *_sales(1, "d")], [], dry_run=True)
    early, _ = submit_run_direct(tenant_id, _sales(1, "early", day=4), [], dry_run=True)
    _drain(service_urls["redis_url"], tenant_id)
    errors = query(
        "SELECT run_id, row, reason FROM run_validation_errors WHERE run_id IN (:a, :b) ORDER BY run_id, row",
        {"a": again, "b": early},
        tenant_id,
    )
    assert sorted(errors) == sorted([(again, 1, "DUPLICATE_SALE"), (early, 1, "BACKDATED_SALE")])
