"""End-to-end COGS run benchmark: 1,000,000 sales over 10,000 SKUs and 200,000 lots, from CSV files to a
committed run (parse, validate, allocate, ledger COPY, audit, status), then its rollback.

The run and its rollback are measured twice (run, rollback, the same files again, rollback): first on the
freshly started server, then on a warm one.

Run: `python -m tests.benchmarks.bench_run_end_to_end [--sales N]`. Uses ASORA_DATABASE_URL/ASORA_REDIS_URL
when set, embedded servers otherwise; works in a scratch database it drops afterwards. Prints the figures
and writes bench-results/run_end_to_end.json.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from tests.benchmarks.scratch import scratch_database, write_results


def generate(directory: Path, n_sales: int, n_skus: int, n_lots: int, seed: int = 42) -> tuple[Path, Path]:
    rng = random.Random(seed)
    lots_per_sku = n_lots // n_skus
    sales_per_sku = n_sales // n_skus
    start = date(2024, 1, 1)
    lots_path, sales_path = directory / "lots.csv", directory / "sales.csv"
    with lots_path.open("w") as lots, sales_path.open("w") as sales:
        lots.write("lot_id,sku,received_date,original_quantity,remaining_quantity,unit_price,freight_cost_per_unit\n")
        sales.write("sale_id,sku,sale_date,quantity_sold\n")
        sale_no = 0
        for s in range(n_skus):
            sku = f"SKU-{s:05d}"
            # every lot arrives on day 0..9, sales from day 10 on: stock is always sufficient
            for k in range(lots_per_sku):
                qty = 60
                lots.write(
                    f"L-{s:05d}-{k:03d},{sku},{start + timedelta(days=k % 10)},{qty},{qty},"
                    f"{rng.randint(100, 99999) / 100:.2f},{rng.randint(0, 300) / 100:.2f}\n"
                )
            for _ in range(sales_per_sku):
                sale_no += 1
                day = start + timedelta(days=10 + rng.randint(0, 300))
                sales.write(f"S{sale_no:08d},{sku},{day}T{rng.randint(0, 23):02d}:00:00Z,{rng.randint(1, 10)}\n")
    return sales_path, lots_path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sales", type=int, default=1_000_000)
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--lots", type=int, default=200_000)
    args = parser.parse_args()

    figures: dict[str, float | int | str] = {"sales": args.sales, "skus": args.skus, "lots": args.lots}
    work = Path(tempfile.mkdtemp(prefix="asora-bench-data-"))
    try:
        with scratch_database():
            figures.update(_bench(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_results("run_end_to_end.json", figures)
    print(json.dumps(figures, indent=2))


def _bench(args: argparse.Namespace, work: Path) -> dict[str, float | int | str]:
    import redis
    from sqlalchemy import select

    from shared import db
    from shared.auth import Principal
    from shared.base import new_id
    from shared.config import get_settings
    from shared.copyio import copy_rows
    from shared.jobs import runner
    from shared.migrate import upgrade
    from shared.registry import TABLE
    from shared.runs import service as runs
    from shared.runs.models import Run
    from shared.tenants import service as tenants

    settings = get_settings()
    assert settings.database_url is not None
    upgrade(settings.database_url)
    tenant_id = "bench-tenant"
    with db.unit_of_work() as session:
        tenants.create_tenant(
            session, tenant_id=tenant_id, name="bench", plan="enterprise", role_model="standard", actor=None
        )
    with db.unit_of_work(tenant_id) as session:
        copy_rows(session, "categories", ("id", "tenant_id", "name"), [("cat_bench", tenant_id, "all")])
        copy_rows(
            session,
            "items",
            ("id", "tenant_id", "name", "sku", "category_id"),
            ((new_id("item"), tenant_id, f"SKU-{s:05d}", f"SKU-{s:05d}", "cat_bench") for s in range(args.skus)),
        )

    t = time.perf_counter()
    sales_path, lots_path = generate(work, args.sales, args.skus, args.lots)
    generated = time.perf_counter() - t
    actor = Principal(key_id="bench", role="owner", role_model="standard", tenant_id=tenant_id)
    client = redis.Redis.from_url(settings.redis_url or "")

    def run_once() -> dict[str, float]:
        t0 = time.perf_counter()
        with db.unit_of_work(tenant_id) as session:
            run, _ = runs.submit_run(
                session,
                tenant_id=tenant_id,
                actor=actor,
                dry_run=False,
                mode="fifo",
                sales=("csv", sales_path.read_bytes()),
                lots=("csv", lots_path.read_bytes()),
            )
            run_id = run
        t1 = time.perf_counter()
        runner.drain_tenant(tenant_id, worker="bench", redis_client=client, settings=settings, kinds=TABLE)
        t2 = time.perf_counter()
        with db.unit_of_work(tenant_id) as session:
            status, total = session.execute(select(Run.status, Run.total_cogs).where(Run.id == run_id)).one()
        assert status == "completed", status
        totals.add(str(total))
        with db.unit_of_work(tenant_id) as session:
            runs.request_rollback(session, tenant_id=tenant_id, actor=actor, run_id=run_id, cascade=False)
        t3 = time.perf_counter()
        runner.drain_tenant(tenant_id, worker="bench", redis_client=client, settings=settings, kinds=TABLE)
        t4 = time.perf_counter()
        with db.unit_of_work(tenant_id) as session:
            status = session.execute(select(Run.status).where(Run.id == run_id)).scalar_one()
        assert status == "rolled_back", status
        return {
            "intake_seconds": round(t1 - t0, 2),
            "run_seconds": round(t2 - t1, 2),
            "end_to_end_seconds": round(t2 - t0, 2),
            "rollback_seconds": round(t4 - t3, 2),
        }

    # The runbook's workflow twice over: run, roll back, run the same files again, roll back. The first
    # round meets a freshly started server (new WAL segments, cold caches); the second a warm one.
    totals: set[str] = set()
    first, second = run_once(), run_once()
    assert len(totals) == 1, f"the re-run costed differently: {totals}"
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures: dict[str, float | int | str] = {"generate_csv_seconds": round(generated, 2)}
    figures.update({f"first_{k}": v for k, v in first.items()})
    figures.update({f"second_{k}": v for k, v in second.items()})
    figures.update(
        {
            "peak_rss_mb": round(peak_mb),
            "total_cogs": totals.pop(),
            "sales_per_second": round(args.sales / min(first["run_seconds"], second["run_seconds"])),
        }
    )
    return figures


if __name__ == "__main__":
    main()
