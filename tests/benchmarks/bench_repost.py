"""Repost benchmark (issue 15): a 100,000-sale history, then a receipt backdated to its first day, in `repost`
mode. ERPNext's users report repost backlogs and stuck reposts; this measures ours.

The history is `bench_run_end_to_end`'s generator at 100,000 sales over 1,000 SKUs and 20,000 lots (lots on days
0..9, sales from day 10 on), costed as one run. The receipt has one line per SKU (30 units at 1.00, lot id
`B-<sku>`), received at 00:00 of day 0: FIFO puts it first for every SKU (the same instant as the day's lots,
a smaller lot id), so every sale's allocation shifts and every sale is re-costed. The receipt job queues the
repost behind it; both run through the real job runner in this process (no Celery), as the run did.

Measured: the repost job (its started_at to finished_at: load, re-cost, COST_ADJUSTMENT COPY, lot balances,
commit), the same repost's rollback, and `asora ledger verify` over the whole tenant afterwards (checking the
result). Run: `python -m tests.benchmarks.bench_repost [--sales 100000]`. Prints a table and writes
bench-results/repost.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.benchmarks.bench_run_end_to_end import generate
from tests.benchmarks.harness import machine, print_table, scratch_environment
from tests.benchmarks.scratch import write_results

TENANT = "bench-repost"


def _seed(skus: int) -> tuple[str, str]:
    """Tenant in repost mode, items, and one hub, bin and vendor to receive into; returns (vendor, bin)."""
    from shared import db
    from shared.base import new_id
    from shared.copyio import copy_rows
    from shared.inventory.models import Bin, Hub, Vendor
    from shared.tenants import service as tenants
    from shared.tenants.models import Tenant

    with db.unit_of_work() as session:  # unscoped, by the app login (docs/security.md)
        tenants.create_tenant(
            session, tenant_id=TENANT, name="bench", plan="enterprise", role_model="standard", actor=None
        )
    with db.unit_of_work(TENANT) as session:
        tenant = session.get(Tenant, TENANT)
        assert tenant is not None
        tenant.backdated_entries = "repost"
        session.add_all(
            [Hub(id="hub_bench", tenant_id=TENANT, name="main"), Vendor(id="ven_bench", tenant_id=TENANT, name="v")]
        )
        session.add(Bin(id="bin_bench", tenant_id=TENANT, hub_id="hub_bench", name="A"))
        copy_rows(session, "categories", ("id", "tenant_id", "name"), [("cat_bench", TENANT, "all")])
        copy_rows(
            session,
            "items",
            ("id", "tenant_id", "name", "sku", "category_id", "default_bin_id"),
            ((new_id("item"), TENANT, f"SKU-{s:05d}", f"SKU-{s:05d}", "cat_bench", "bin_bench") for s in range(skus)),
        )
    return "ven_bench", "bin_bench"


def _job(job_id: str) -> Any:
    from shared import db
    from shared.jobs.models import Job

    with db.unit_of_work(TENANT) as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
        return job


def _from_scratch(sales_path: Path, lots_path: Path, skus: int) -> dict[str, int]:
    """Every sale's COGS (scaled 10^8) costing the history and the backdated receipt together, from scratch."""
    import numpy as np

    from shared.runs import fifo
    from shared.runs.csvio import parse_lots_csv, parse_sales_csv

    with sales_path.open("rb") as f:
        sales = parse_sales_csv(f).batch
    with lots_path.open("rb") as f:
        lots = parse_lots_csv(f).batch
    day0 = fifo.to_datetime64(datetime(2024, 1, 1, tzinfo=UTC))
    back = [f"B-SKU-{s:05d}" for s in range(skus)]
    every = fifo.LotsBatch(
        row=np.concatenate([lots.row, np.zeros(skus, np.int64)]),
        lot_id=lots.lot_id + back,
        sku=lots.sku + [f"SKU-{s:05d}" for s in range(skus)],
        received_date=np.concatenate([lots.received_date, np.full(skus, day0, dtype="datetime64[us]")]),
        quantity=np.concatenate([lots.quantity, np.full(skus, 30 * 10**4, np.int64)]),
        unit_cost=np.concatenate([lots.unit_cost, np.full(skus, 10**4, np.int64)]),
    )
    result = fifo.reference_allocate(sales, every)
    assert result.ok
    return dict(zip(sales.sale_id, (int(c) for c in result.sale_cogs.tolist()), strict=True))


def _ledger_cogs() -> dict[str, int]:
    from sqlalchemy import text

    from shared import db

    with db.unit_of_work(TENANT) as session:
        rows = session.execute(
            text("""SELECT reference, -sum(amount) FROM ledger_events
                    WHERE event_type IN ('ISSUE', 'COST_ADJUSTMENT') GROUP BY reference""")
        ).all()
    return {r[0]: int(r[1].scaleb(8)) for r in rows}


def _bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import redis

    from shared import db
    from shared.auth import Principal
    from shared.config import get_settings
    from shared.inventory import receipts
    from shared.inventory.schemas import ReceiptCreate, ReceiptLineIn
    from shared.jobs import runner
    from shared.ledger import verify
    from shared.registry import TABLE
    from shared.runs import repost
    from shared.runs import service as runs

    settings = get_settings()
    client = redis.Redis.from_url(settings.redis_url or "")
    actor = Principal(key_id="bench", role="owner", role_model="standard", tenant_id=TENANT)

    def drain() -> None:
        runner.drain_tenant(TENANT, worker="bench", redis_client=client, settings=settings, kinds=TABLE)

    vendor, bin_id = _seed(args.skus)
    sales_path, lots_path = generate(work, args.sales, args.skus, args.lots)
    with db.unit_of_work(TENANT) as session:
        _run_id, run_job = runs.submit_run(
            session, tenant_id=TENANT, actor=actor, dry_run=False, mode="fifo",
            sales=("csv", sales_path.read_bytes()), lots=("csv", lots_path.read_bytes()),
        )  # fmt: skip
    t = time.perf_counter()
    drain()
    run_seconds = time.perf_counter() - t
    assert _job(run_job.id).status == "completed", _job(run_job.id).error

    lines = [
        ReceiptLineIn(sku=f"SKU-{s:05d}", bin_id=bin_id, quantity="30", unit_cost="1.00", lot_id=f"B-SKU-{s:05d}")
        for s in range(args.skus)
    ]
    body = ReceiptCreate(vendor_id=vendor, received_at=datetime(2024, 1, 1, tzinfo=UTC), lines=lines)
    with db.unit_of_work(TENANT) as session:
        receipt_job = receipts.submit_receipt(session, tenant_id=TENANT, actor=actor, body=body)
    t = time.perf_counter()
    for _ in range(3):  # the receipt, then the repost it queued (numbered at the receipt's commit)
        drain()
    drained = time.perf_counter() - t
    receipt = _job(receipt_job.id)
    assert receipt.status == "completed", receipt.error
    reposted = _job(receipt.result["repost_job_id"])
    assert reposted.status == "completed", reposted.error
    assert reposted.started_at is not None and reposted.finished_at is not None
    repost_seconds = (reposted.finished_at - reposted.started_at).total_seconds()

    expected = _from_scratch(sales_path, lots_path, args.skus)
    assert _ledger_cogs() == expected, "the reposted books differ from costing in date order from scratch"

    t = time.perf_counter()
    with verify.snapshot(TENANT) as session:
        checked = verify.verify_ledger(session, TENANT)
    verify_seconds = time.perf_counter() - t
    assert checked.ok, checked.differences[:10]

    with db.unit_of_work(TENANT) as session:
        undo = repost.request_rollback(session, tenant_id=TENANT, actor=actor, job_id=reposted.id)
    drain()
    undone = _job(undo.id)
    assert undone.status == "completed", undone.error
    assert undone.started_at is not None and undone.finished_at is not None
    with verify.snapshot(TENANT) as session:
        assert verify.verify_ledger(session, TENANT).ok

    result = reposted.result
    return {
        "sales": args.sales,
        "skus": args.skus,
        "lots": args.lots,
        "history_run_seconds": round(run_seconds, 2),
        "sales_recosted": result["sales_recosted"],
        "cost_adjustment_events": result["events"],
        "cogs_change": result["cogs_change"],
        "repost_job_seconds": round(repost_seconds, 2),
        "receipt_and_repost_drain_seconds": round(drained, 2),
        "sales_recosted_per_second": round(result["sales_recosted"] / repost_seconds) if repost_seconds else None,
        "repost_rollback_job_seconds": round((undone.finished_at - undone.started_at).total_seconds(), 2),
        "verify_after_repost_seconds": round(verify_seconds, 2),
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sales", type=int, default=100_000)
    parser.add_argument("--skus", type=int, default=1_000)
    parser.add_argument("--lots", type=int, default=20_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="asora-bench-repost-"))
    try:
        with scratch_environment():
            figures = _bench(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_results("repost.json", figures)
    print_table(
        f"Repost after a receipt backdated to day 0 of a {args.sales:,}-sale history ({args.skus:,} SKUs)",
        ["sales re-costed", "events", "repost job s", "sales/s", "rollback s", "verify s", "history run s"],
        [
            [
                figures["sales_recosted"], figures["cost_adjustment_events"], figures["repost_job_seconds"],
                figures["sales_recosted_per_second"], figures["repost_rollback_job_seconds"],
                figures["verify_after_repost_seconds"], figures["history_run_seconds"],
            ]
        ],
    )  # fmt: skip
    print(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
