"""Report benchmark: one tenant with 10,000 SKUs and 5,000,000 ledger events (tests/benchmarks/gen_ledger.py),
then each report timed through its service function as the application role, and `verify_ledger` once.

Run: `python -m tests.benchmarks.bench_reports [--skus N] [--events-per-sku N] [--repeat N] [--skip-verify]`.
Uses ASORA_DATABASE_URL/ASORA_REDIS_URL when set, embedded servers otherwise; works in a scratch database it
drops afterwards. Prints the figures and writes bench-results/reports.json.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import time
from typing import Any

from tests.benchmarks.scratch import scratch_database, write_results

TENANT = "bench"


def cases(skus: int) -> list[tuple[str, dict[str, str]]]:
    middle = f"SKU-{skus // 2:05d}"
    return [
        ("stock-on-hand", {}),
        ("stock-on-hand", {"sku": middle}),
        ("stock-on-hand", {"hub_id": f"{TENANT}-hub-1"}),
        ("stock-on-hand", {"as_of": "2023-12-01"}),
        ("valuation", {}),
        ("valuation", {"as_of": "2023-12-01"}),
        ("valuation", {"as_of": "2023-07-01"}),
        ("inventory-movement", {"from": "2023-11-01", "to": "2023-12-01"}),
        ("inventory-movement", {"from": "2023-11-01", "to": "2023-12-01", "sku": middle}),
        ("inventory-movement", {}),
        ("receiving-summary", {"from": "2023-11-01", "to": "2023-12-01"}),
        ("shrink-summary", {"from": "2023-01-01", "to": "2023-02-01"}),
    ]


def _time_reports(skus: int, repeat: int) -> list[dict[str, Any]]:
    from shared import db
    from shared.reports import service as reports
    from shared.reports.schemas import parse_params

    results = []
    for report, params in cases(skus):
        parsed = parse_params(report, params)
        timings, rows = [], 0
        for attempt in range(repeat + 1):  # the first run warms the cache and is not counted
            with db.unit_of_work(TENANT) as session:
                started = time.perf_counter()
                rows = len(reports.run_report(session, TENANT, report, parsed).rows)
                elapsed = time.perf_counter() - started
            if attempt:
                timings.append(elapsed)
        results.append(
            {
                "report": report,
                "params": params,
                "rows": rows,
                "min_ms": round(min(timings) * 1000, 1),
                "median_ms": round(statistics.median(timings) * 1000, 1),
                "max_ms": round(max(timings) * 1000, 1),
            }
        )
        print(f"{report:20} {json.dumps(params):70} {rows:>7} rows  median {results[-1]['median_ms']:>8} ms")
    return results


def _time_verify() -> dict[str, Any]:
    from shared.ledger import verify

    started = time.perf_counter()
    with verify.snapshot(TENANT) as session:
        result = verify.verify_ledger(session, TENANT)
    return {"seconds": round(time.perf_counter() - started, 1), "events": result.events, "ok": result.ok}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--events-per-sku", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-verify", action="store_true")
    args = parser.parse_args()

    from shared.migrate import upgrade
    from tests.benchmarks.gen_ledger import Shape, generate

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the servers and drop the database on SIGTERM too

    figures: dict[str, Any] = {}
    with scratch_database() as database_url:
        upgrade(database_url)
        print(f"generating {args.skus * args.events_per_sku:,} ledger events over {args.skus:,} SKUs ...")
        figures["generate"] = generate(database_url, TENANT, Shape(args.skus, args.events_per_sku))
        print(f"generated in {figures['generate']['total_seconds']} s: {figures['generate']}")
        figures["reports"] = _time_reports(args.skus, args.repeat)
        if not args.skip_verify:
            figures["verify"] = _time_verify()
            print(f"ledger verify: {figures['verify']}")
    print(f"wrote {write_results('reports.json', figures)}")


if __name__ == "__main__":
    main()
