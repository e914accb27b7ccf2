"""Large run against raw COPY: how many times longer a 1,000,000-sale CSV run takes end to end, through the
API, than PostgreSQL takes to ingest the ledger rows it produces. The target is at most 3x; the benchmark
prints the ratio and judges nothing.

(a) The run: the CSV files of `bench_run_end_to_end` (10,000 SKUs, 200,000 lots), uploaded as the CLI's
`asora run` does (multipart, `shared.cli.client.ApiClient`) to the API of a running stack (one uvicorn
process, one worker, the relay); timed from the start of the upload to the job's `finished_at`.
(b) Raw COPY: the run's own ledger events, read back (`COPY ... TO STDOUT`, not timed) and written as one
COPY text stream into `ledger_copy`, a table made `(LIKE ledger_events INCLUDING ALL)`: the same columns, the
same primary key (tenant_id, seq), secondary index and CHECK constraints, but no row-level security and no
triggers; in one transaction, committed. Timed from the first byte sent to the commit.

Before each phase the benchmark waits for the kernel's dirty pages to be written back, so neither pays for the
other's writes. Both run in the same scratch database, one after the other, in one invocation.

Run: `python -m tests.benchmarks.bench_large_run_ratio [--sales 1000000]` (`--sales 200000` for a quick
look; lots and SKUs scale with it). Prints a table and writes bench-results/large_run_ratio.json.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.benchmarks.bench_run_end_to_end import generate
from tests.benchmarks.harness import (
    PeakRss,
    Running,
    machine,
    print_table,
    running_stack,
    wait_for_writeback,
)
from tests.benchmarks.scratch import write_results

TENANT = "bench-large"
CHUNK = 1 << 20


def seed_tenant(skus: int) -> str:
    """The tenant, its owner key and its items (written as `bench_run_end_to_end` writes them)."""
    from shared import db
    from shared.auth import LOCAL_ADMIN
    from shared.base import new_id
    from shared.copyio import copy_rows
    from shared.tenants import service as tenants

    with db.unit_of_work() as session:
        tenants.create_tenant(
            session, tenant_id=TENANT, name="bench", plan="enterprise", role_model="standard", actor=None
        )
    with db.unit_of_work(TENANT) as session:
        _, key = tenants.create_key(session, tenant_id=TENANT, role="owner", name="bench", actor=LOCAL_ADMIN)
        copy_rows(session, "categories", ("id", "tenant_id", "name"), [("cat_bench", TENANT, "all")])
        copy_rows(
            session,
            "items",
            ("id", "tenant_id", "name", "sku", "category_id"),
            ((new_id("item"), TENANT, f"SKU-{s:05d}", f"SKU-{s:05d}", "cat_bench") for s in range(skus)),
        )
    return key


def run_through_api(running: Running, key: str, sales: Path, lots: Path) -> dict[str, Any]:
    from shared.cli.client import ApiClient

    client = ApiClient(api_url=running.base, api_key=key)
    peak = PeakRss(running.stack.pid("worker0"))
    peak.start()
    began = time.time()
    with sales.open("rb") as sales_file, lots.open("rb") as lots_file:
        files = {"sales_file": (sales.name, sales_file, "text/csv"), "lots_file": (lots.name, lots_file, "text/csv")}
        data = {"tenant_id": TENANT, "mode": "fifo", "dry_run": "false"}
        accepted = client.json("POST", "/runs", files=files, data=data)
    answered = time.time()
    while (job := client.json("GET", f"/jobs/{accepted['job_id']}"))["status"] not in ("completed", "failed"):
        time.sleep(0.1)
    worker_peak = peak.stop()
    run = client.json("GET", f"/runs/{accepted['run_id']}")
    if run["status"] != "completed":
        raise SystemExit(f"the run did not complete: {run['status']} {run.get('error')}")
    created, started, finished = (
        datetime.fromisoformat(job[k]).timestamp() for k in ("created_at", "started_at", "finished_at")
    )
    return {
        "run_id": accepted["run_id"],
        "upload_and_accept_seconds": round(answered - began, 2),
        "queued_seconds": round(started - created, 2),
        "job_seconds": round(finished - started, 2),
        "end_to_end_seconds": round(finished - began, 2),
        "total_cogs": run["total_cogs"],
        "worker_peak_rss_mb": round(worker_peak / (1 << 20)),
    }


def raw_copy(running: Running, run_id: str) -> dict[str, Any]:
    with running.connect() as conn:
        columns = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'ledger_events'"
                " ORDER BY ordinal_position"
            )
        ]
        names = ", ".join(columns)
        stream = bytearray()
        with conn.cursor().copy(
            f"COPY (SELECT {names} FROM ledger_events WHERE tenant_id = %s AND run_id = %s ORDER BY seq) TO STDOUT",
            (TENANT, run_id),
        ) as copy:
            for block in copy:
                stream += block
        rows = stream.count(b"\n")
        conn.execute("CREATE TABLE ledger_copy (LIKE ledger_events INCLUDING ALL)")
        indexes = [r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'ledger_copy'")]
        waited = wait_for_writeback()
        view = memoryview(stream)
        began = time.perf_counter()
        with conn.transaction(), conn.cursor().copy(f"COPY ledger_copy ({names}) FROM STDIN") as copy:
            for at in range(0, len(view), CHUNK):
                copy.write(view[at : at + CHUNK])
        seconds = time.perf_counter() - began
        copied = conn.execute("SELECT count(*) FROM ledger_copy").fetchone()
    assert copied is not None and copied[0] == rows, (copied, rows)
    return {
        "rows": rows,
        "bytes": len(stream),
        "indexes": indexes,
        "writeback_wait_seconds": waited,
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows / seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sales", type=int, default=1_000_000)
    args = parser.parse_args()
    skus, lots = max(10, args.sales // 100), max(200, args.sales // 5)  # 1 M sales: 10,000 SKUs, 200,000 lots

    figures: dict[str, Any] = {"machine": machine(), "sales": args.sales, "skus": skus, "lots": lots}
    work = Path(tempfile.mkdtemp(prefix="asora-bench-data-"))
    try:
        with running_stack(api_processes=1) as running:
            key = seed_tenant(skus)
            sales_path, lots_path = generate(work, args.sales, skus, lots)
            figures["csv_mb"] = round((sales_path.stat().st_size + lots_path.stat().st_size) / 1e6, 1)
            figures["writeback_wait_before_run_seconds"] = wait_for_writeback()
            run = figures["run"] = run_through_api(running, key, sales_path, lots_path)
            copy = figures["raw_copy"] = raw_copy(running, run["run_id"])
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ratio = figures["ratio"] = round(run["end_to_end_seconds"] / copy["seconds"], 2)
    print_table(
        f"{args.sales:,}-sale CSV run end to end vs raw COPY of its {copy['rows']:,} ledger rows "
        f"({copy['bytes'] / 1e6:.0f} MB as COPY text)",
        ["what", "seconds", "detail"],
        [
            [
                "run, upload to finished",
                run["end_to_end_seconds"],
                f"upload+accept {run['upload_and_accept_seconds']}s, queued {run['queued_seconds']}s, "
                f"job {run['job_seconds']}s; worker peak RSS {run['worker_peak_rss_mb']} MB",
            ],
            [
                "raw COPY into ledger_copy",
                copy["seconds"],
                f"{copy['rows_per_second']:,} rows/s; indexes {', '.join(copy['indexes'])}",
            ],
            ["ratio run / COPY", ratio, "target <= 3x (printed, not judged)"],
        ],
    )
    print(f"wrote {write_results('large_run_ratio.json', figures)}")


if __name__ == "__main__":
    main()
