"""Repost benchmark (issue 15): a 100,000-sale history, then a receipt backdated to its first day, in `repost`
mode, once per costing method (FIFO, LIFO, moving average: each in a scratch database and tenant of its own,
whose runs cost by it).
ERPNext's users report repost backlogs and stuck reposts; this measures ours.

The history is `bench_run_end_to_end`'s generator at 100,000 sales over 1,000 SKUs and 20,000 lots (lots on days
0..9, sales from day 10 on), costed as one run. The receipt has one line per SKU (30 units at 1.00, lot id
`B-<sku>`), received at 00:00 of day 0: FIFO puts it first for every SKU (the same instant as the day's lots,
a smaller lot id), so under FIFO every sale's allocation shifts and every sale is re-costed; under moving
average every sale's unit cost changes (the pool's average), so every sale is re-costed too; under LIFO the
oldest layer is only reached by the sales that empty a SKU's stack, so few are. The receipt job queues the
repost behind it; both run through the real job runner in this process (no Celery), as the run did.

Measured: the repost job (its started_at to finished_at: load, re-cost, COST_ADJUSTMENT COPY, lot balances,
commit), the same repost's rollback, and `asora ledger verify` over the whole tenant afterwards (checking the
result). The reposted books are checked against each method's plain reference engine costing the history and
the receipt together from scratch. Run: `python -m tests.benchmarks.bench_repost [--sales 100000]
[--methods fifo,lifo,moving_average]`. Prints a table (one row per method) and writes bench-results/repost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.benchmarks.bench_run_end_to_end import generate
from tests.benchmarks.harness import machine, print_table, scratch_environment
from tests.benchmarks.scratch import write_results

METHODS = ("fifo", "lifo", "moving_average")


def _tenant(method: str) -> str:
    return f"bench-repost-{method.replace('_', '-')}"


def _seed(tenant_id: str, method: str, skus: int) -> tuple[str, str]:
    """Tenant in repost mode costing by `method`, items, and one hub, bin and vendor to receive into; returns
    (vendor, bin)."""
    from shared import db
    from shared.base import new_id
    from shared.copyio import copy_rows
    from shared.inventory.models import Bin, Hub, Vendor
    from shared.tenants import service as tenants
    from shared.tenants.models import Tenant

    with db.unit_of_work() as session:  # unscoped, by the app login (docs/security.md)
        tenants.create_tenant(
            session, tenant_id=tenant_id, name="bench", plan="enterprise", role_model="standard", actor=None
        )
    with db.unit_of_work(tenant_id) as session:
        tenant = session.get(Tenant, tenant_id)
        assert tenant is not None
        tenant.backdated_entries = "repost"
        tenant.valuation_method = method
        hub, vendor, bin_id, category = (f"{kind}_{method}" for kind in ("hub", "ven", "bin", "cat"))
        session.add_all(
            [Hub(id=hub, tenant_id=tenant_id, name="main"), Vendor(id=vendor, tenant_id=tenant_id, name="v")]
        )
        session.add(Bin(id=bin_id, tenant_id=tenant_id, hub_id=hub, name="A"))
        copy_rows(session, "categories", ("id", "tenant_id", "name"), [(category, tenant_id, "all")])
        copy_rows(
            session,
            "items",
            ("id", "tenant_id", "name", "sku", "category_id", "default_bin_id"),
            ((new_id("item"), tenant_id, f"SKU-{s:05d}", f"SKU-{s:05d}", category, bin_id) for s in range(skus)),
        )
    return vendor, bin_id


def _job(tenant_id: str, job_id: str) -> Any:
    from shared import db
    from shared.jobs.models import Job

    with db.unit_of_work(tenant_id) as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
        return job


def _from_scratch(method: str, sales_path: Path, lots_path: Path, skus: int) -> dict[str, int]:
    """Every sale's COGS (scaled 10^8) costing the history and the backdated receipt together, from scratch, by
    the method's plain reference engine."""
    import numpy as np

    from shared import costing
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
    result = costing.reference_allocate(method, sales, every)
    assert result.ok
    return dict(zip(sales.sale_id, (int(c) for c in result.sale_cogs.tolist()), strict=True))


def _ledger_cogs(tenant_id: str) -> dict[str, int]:
    from sqlalchemy import text

    from shared import db

    with db.unit_of_work(tenant_id) as session:
        rows = session.execute(
            text("""SELECT reference, -sum(amount) FROM ledger_events
                    WHERE event_type IN ('ISSUE', 'COST_ADJUSTMENT') GROUP BY reference""")
        ).all()
    return {r[0]: int(r[1].scaleb(8)) for r in rows}


def _bench(args: argparse.Namespace, work: Path, method: str) -> dict[str, Any]:
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
    tenant_id = _tenant(method)
    actor = Principal(key_id="bench", role="owner", role_model="standard", tenant_id=tenant_id)

    def drain() -> None:
        runner.drain_tenant(tenant_id, worker="bench", redis_client=client, settings=settings, kinds=TABLE)

    vendor, bin_id = _seed(tenant_id, method, args.skus)
    work.mkdir(parents=True, exist_ok=True)
    sales_path, lots_path = generate(work, args.sales, args.skus, args.lots)
    with db.unit_of_work(tenant_id) as session:
        _run_id, run_job = runs.submit_run(
            session, tenant_id=tenant_id, actor=actor, dry_run=False, mode=method,
            sales=("csv", sales_path.read_bytes()), lots=("csv", lots_path.read_bytes()),
        )  # fmt: skip
    t = time.perf_counter()
    drain()
    run_seconds = time.perf_counter() - t
    assert _job(tenant_id, run_job.id).status == "completed", _job(tenant_id, run_job.id).error

    lines = [
        ReceiptLineIn(sku=f"SKU-{s:05d}", bin_id=bin_id, quantity="30", unit_cost="1.00", lot_id=f"B-SKU-{s:05d}")
        for s in range(args.skus)
    ]
    body = ReceiptCreate(vendor_id=vendor, received_at=datetime(2024, 1, 1, tzinfo=UTC), lines=lines)
    with db.unit_of_work(tenant_id) as session:
        receipt_job = receipts.submit_receipt(session, tenant_id=tenant_id, actor=actor, body=body)
    t = time.perf_counter()
    for _ in range(3):  # the receipt, then the repost it queued (numbered at the receipt's commit)
        drain()
    drained = time.perf_counter() - t
    receipt = _job(tenant_id, receipt_job.id)
    assert receipt.status == "completed", receipt.error
    reposted = _job(tenant_id, receipt.result["repost_job_id"])
    assert reposted.status == "completed", reposted.error
    assert reposted.started_at is not None and reposted.finished_at is not None
    repost_seconds = (reposted.finished_at - reposted.started_at).total_seconds()

    expected = _from_scratch(method, sales_path, lots_path, args.skus)
    assert _ledger_cogs(tenant_id) == expected, "the reposted books differ from costing in date order from scratch"

    t = time.perf_counter()
    with verify.snapshot(tenant_id) as session:
        checked = verify.verify_ledger(session, tenant_id)
    verify_seconds = time.perf_counter() - t
    assert checked.ok, checked.differences[:10]

    rollback_seconds = None
    if reposted.result["events"]:  # a repost that changed nothing has nothing to roll back (422 NO_DATA)
        with db.unit_of_work(tenant_id) as session:
            undo = repost.request_rollback(session, tenant_id=tenant_id, actor=actor, job_id=reposted.id)
        drain()
        undone = _job(tenant_id, undo.id)
        assert undone.status == "completed", undone.error
        assert undone.started_at is not None and undone.finished_at is not None
        with verify.snapshot(tenant_id) as session:
            assert verify.verify_ledger(session, tenant_id).ok
        rollback_seconds = round((undone.finished_at - undone.started_at).total_seconds(), 2)

    result = reposted.result
    return {
        "method": method,
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
        "repost_rollback_job_seconds": rollback_seconds,
        "verify_after_repost_seconds": round(verify_seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sales", type=int, default=100_000)
    parser.add_argument("--skus", type=int, default=1_000)
    parser.add_argument("--lots", type=int, default=20_000)
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated: fifo,lifo,moving_average")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    assert set(methods) <= set(METHODS), f"unknown method in {methods}"
    work = Path(tempfile.mkdtemp(prefix="asora-bench-repost-"))
    try:
        runs = []
        saved = {k: os.environ[k] for k in ("ASORA_DATABASE_URL", "ASORA_REDIS_URL") if k in os.environ}
        for m in methods:  # each method in a scratch database of its own: none runs on another's tables
            with scratch_environment():
                runs.append(_bench(args, work / m, m))
            os.environ.update(saved)  # the scratch environment points them at what it has just dropped
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures = {"methods": {r["method"]: r for r in runs}, "machine": machine()}
    write_results("repost.json", figures)
    print_table(
        f"Repost after a receipt backdated to day 0 of a {args.sales:,}-sale history ({args.skus:,} SKUs)",
        ["method", "sales re-costed", "events", "repost job s", "sales/s", "rollback s", "verify s", "history run s"],
        [
            [
                r["method"], r["sales_recosted"], r["cost_adjustment_events"], r["repost_job_seconds"],
                r["sales_recosted_per_second"], r["repost_rollback_job_seconds"], r["verify_after_repost_seconds"],
                r["history_run_seconds"],
            ]
            for r in runs
        ],
    )  # fmt: skip
    print(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
