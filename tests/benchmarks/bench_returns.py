"""Returns and landed-cost benchmark: one run of N one-unit sales, all issued from one lot; then a landed cost
on that lot (N per-sale COGS adjustments) and a sale return from the middle of the run, each through intake
and the job runner (in process), timed apart.

Run: `python -m tests.benchmarks.bench_returns [--sales N]` (default 100,000). Uses ASORA_DATABASE_URL and
ASORA_REDIS_URL when set, embedded servers otherwise; works in a scratch database it drops afterwards. Prints
the figures and writes bench-results/returns.json.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from tests.benchmarks.scratch import scratch_database, write_results

TENANT = "bench-returns"
SKU = "B-1"


def _timed(step: Callable[[], Any]) -> float:
    started = time.perf_counter()
    step()
    return round(time.perf_counter() - started, 3)


def _measure(sales: int) -> dict[str, Any]:
    import redis

    from shared import db
    from shared.auth import Principal
    from shared.config import get_settings
    from shared.jobs import runner
    from shared.landed_costs import service as landed_costs
    from shared.landed_costs.schemas import LandedCostCreate
    from shared.registry import TABLE
    from shared.returns import service as returns
    from shared.returns.schemas import ReturnCreate
    from shared.tenants import service as tenants
    from tests.support import lot, query, sale, seed_items, submit_run_direct

    settings = get_settings()
    assert settings.redis_url is not None  # scratch_database sets it
    client = redis.Redis.from_url(settings.redis_url)
    with db.unit_of_work() as session:  # unscoped, by the app login (docs/security.md)
        tenants.create_tenant(
            session, tenant_id=TENANT, name=TENANT, plan="enterprise", role_model="standard", actor=None
        )
    seed_items(TENANT, [SKU])
    actor = Principal(key_id="bench", role="owner", role_model="standard", tenant_id=TENANT)

    def drain() -> None:
        runner.drain_tenant(TENANT, worker="bench", redis_client=client, settings=settings, kinds=TABLE)

    rows = [sale(f"S{i:07d}", SKU, f"2024-03-{10 + i * 18 // sales:02d}T00:00:00Z", "1") for i in range(sales)]
    figures: dict[str, Any] = {"sales": sales}

    def run_sales() -> None:
        submit_run_direct(TENANT, rows, [lot("BIG", SKU, "2024-03-01", str(2 * sales), "1.5")])
        drain()

    figures["run_seconds"] = _timed(run_sales)

    def accept_landed_cost() -> None:
        body = LandedCostCreate.model_validate(
            {"lot_id": "BIG", "amount": "1000", "allocated_at": "2024-03-29T00:00:00Z"}
        )
        with db.unit_of_work(TENANT) as session:
            landed_costs.submit_landed_cost(session, tenant_id=TENANT, actor=actor, body=body)

    def accept_return() -> None:
        body = ReturnCreate.model_validate(
            {"kind": "sale", "sale_id": f"S{sales // 2:07d}", "quantity": "1", "returned_at": "2024-03-30T00:00:00Z"}
        )
        with db.unit_of_work(TENANT) as session:
            returns.submit_return(session, tenant_id=TENANT, actor=actor, body=body)

    figures["landed_cost_intake_seconds"] = _timed(accept_landed_cost)
    figures["landed_cost_posting_seconds"] = _timed(drain)
    figures["sale_return_intake_seconds"] = _timed(accept_return)
    figures["sale_return_posting_seconds"] = _timed(drain)
    statuses = query("SELECT kind, status FROM jobs WHERE tenant_id = :t ORDER BY seq", {"t": TENANT})
    figures["jobs"] = [f"{kind} {status}" for kind, status in statuses]
    figures["cost_adjustments"] = query(
        "SELECT count(*) FROM ledger_events WHERE tenant_id = :t AND event_type = 'COST_ADJUSTMENT'", {"t": TENANT}
    )[0][0]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sales", type=int, default=100_000)
    args = parser.parse_args()

    from shared.migrate import upgrade

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the servers and drop the database on SIGTERM too
    with scratch_database() as database_url:
        upgrade(database_url)
        figures = _measure(args.sales)
    for name, value in figures.items():
        print(f"{name:32} {value}")
    print(f"wrote {write_results('returns.json', figures)}")


if __name__ == "__main__":
    main()
