"""Job pipeline benchmark: how fast the workers drain small jobs spread over many tenants, and how long an
accepted job waits for a worker when the load is steady and below capacity.

Phase "drain": `--jobs` one-lot, one-sale dry runs over `--tenants` tenants, accepted as fast as
`--accept-threads` clients can (`shared.runs.service.submit_run` in a transaction per job, published after
commit: what the API's `POST /runs` does behind HTTP) while the worker(s) and the relay run; throughput is jobs
from the first `created_at` to the last `finished_at`. Phase "paced", once the broker holds no wake-ups left
over from the drain: jobs accepted at `--rate` per second (a steady load the workers keep up with), reporting
`started_at - created_at` at p50/p99. `created_at` is the moment the job was numbered, just before the
accepting transaction's COMMIT.

Checked after each phase, as correctness (a failure is printed loudly and exits 1): every job completed; each
tenant's jobs are gapless 1..n; each started in `seq` order and only after the one before it finished.

Run: `python -m tests.benchmarks.bench_pipeline [--jobs 10000] [--tenants 100] [--rate 50]
[--workers 1] [--worker-concurrency 2]`. Prints a table and writes bench-results/pipeline.json.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import redis

from tests.benchmarks.harness import (
    LOT,
    BenchTenant,
    Check,
    check_gapless,
    create_tenants,
    machine,
    print_table,
    report_checks,
    running_stack,
    sale,
)
from tests.benchmarks.scratch import write_results


def submit(tenant: BenchTenant, sale_id: str) -> str:
    from shared import db
    from shared.auth import Principal
    from shared.runs import service as runs

    actor = Principal(key_id="bench", role="owner", role_model="standard", tenant_id=tenant.tenant_id)
    with db.unit_of_work(tenant.tenant_id) as session:
        _, job = runs.submit_run(
            session,
            tenant_id=tenant.tenant_id,
            actor=actor,
            dry_run=True,
            mode="fifo",
            sales=("json", runs.records_blob([sale(sale_id)])),
            lots=("json", runs.records_blob([LOT])),
        )
        return job.id


def wait_drained(conn: psycopg.Connection[Any], job_ids: list[str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT count(*) FROM jobs WHERE id = ANY(%s) AND status IN ('queued', 'running')", (job_ids,)
        ).fetchone()
        if row is not None and row[0] == 0:
            return True
        time.sleep(0.5)
    return False


def broker_backlog() -> int:
    """Messages waiting in the broker's job queues (kombu's Redis lists, one per queue and priority step)."""
    from shared.registry import QUEUES

    client = redis.Redis.from_url(os.environ["ASORA_REDIS_URL"])
    total = 0
    for queue in QUEUES:
        for key in client.scan_iter(match=f"{queue}*"):
            if client.type(key) == b"list":
                total += int(client.llen(key))
    client.close()
    return total


def wait_broker_empty(timeout: float) -> tuple[int, float]:
    """Wait for the wake-ups left over from the drain (one per job, plus the relay's re-sends for jobs queued
    longer than its republish delay) to be consumed; returns how many there were and the seconds it took."""
    started = time.monotonic()
    left = first = broker_backlog()
    while left and time.monotonic() - started < timeout:
        time.sleep(0.5)
        left = broker_backlog()
    return first, round(time.monotonic() - started, 1)


def phase_figures(conn: psycopg.Connection[Any], job_ids: list[str]) -> dict[str, Any]:
    row = conn.execute(
        "SELECT count(*), count(DISTINCT tenant_id),"
        " extract(epoch FROM max(finished_at) - min(created_at)),"
        " extract(epoch FROM max(finished_at) - min(started_at)),"
        " percentile_disc(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at)),"
        " percentile_disc(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at)),"
        " max(extract(epoch FROM started_at - created_at)),"
        " percentile_disc(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at)),"
        " count(*) FILTER (WHERE attempts > 1), count(DISTINCT worker)"
        " FROM jobs WHERE id = ANY(%s)",
        (job_ids,),
    ).fetchone()
    assert row is not None
    jobs, tenants, span, worker_span, p50, p99, worst, run_p50, retried, workers = row
    return {
        "jobs": jobs,
        "tenants": tenants,
        "accept_to_finish_seconds": round(float(span), 2),
        "jobs_per_s": round(jobs / float(span), 1),
        "first_start_to_last_finish_jobs_per_s": round(jobs / float(worker_span), 1),
        "accept_to_start_ms": {
            "p50": round(float(p50) * 1000, 1),
            "p99": round(float(p99) * 1000, 1),
            "max": round(float(worst) * 1000, 1),
        },
        "run_ms_p50": round(float(run_p50) * 1000, 1),
        "retried_jobs": retried,
        "worker_hosts": workers,
    }


def check_order(conn: psycopg.Connection[Any], job_ids: list[str]) -> list[Check]:
    statuses = dict(
        conn.execute("SELECT status, count(*) FROM jobs WHERE id = ANY(%s) GROUP BY status", (job_ids,)).fetchall()
    )
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE started_at < prev_started),"
        " count(*) FILTER (WHERE started_at < prev_finished), count(prev_started) FROM ("
        " SELECT started_at, lag(started_at) OVER w AS prev_started, lag(finished_at) OVER w AS prev_finished"
        " FROM jobs WINDOW w AS (PARTITION BY tenant_id, stream ORDER BY seq)) s"
    ).fetchone()
    assert row is not None
    out_of_order, overlapping, pairs = row
    done = statuses.get("completed", 0)
    return [
        Check("every job completed", done == len(job_ids), f"{statuses}"),
        check_gapless(conn),
        Check(
            "each tenant's jobs started in seq order",
            out_of_order == 0,
            f"{out_of_order} of {pairs} consecutive pairs started out of order",
        ),
        Check(
            "each job started after the one before it finished",
            overlapping == 0,
            f"{overlapping} of {pairs} consecutive pairs overlapped",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="paced jobs/s (default 50, lowered when the drain phase shows the workers cannot keep up with that)",
    )
    parser.add_argument("--paced-seconds", type=float, default=20)
    parser.add_argument("--workers", type=int, default=1, help="Celery worker processes")
    parser.add_argument("--worker-concurrency", type=int, default=2, help="prefork children per worker")
    parser.add_argument("--accept-threads", type=int, default=4, help="clients accepting the drain phase's jobs")
    parser.add_argument("--drain-timeout", type=float, default=3600, help="give up waiting after this long")
    args = parser.parse_args()

    figures: dict[str, Any] = {"machine": machine(), "workers": args.workers, "concurrency": args.worker_concurrency}
    ok = True
    table = []
    with running_stack(api=False, workers=args.workers, worker_concurrency=args.worker_concurrency) as running:
        from shared.jobs import outbox
        from worker.publisher import publish

        outbox.set_publisher(publish)  # as the API process does: each job's wake-up goes out after its commit
        tenants = create_tenants(args.tenants, prefix="pipe")
        print(
            f"{args.workers} worker process(es) x concurrency {args.worker_concurrency}, relay running; "
            f"{args.tenants} tenants"
        )

        started = time.perf_counter()
        with ThreadPoolExecutor(args.accept_threads) as pool:
            drain_ids = list(pool.map(lambda n: submit(tenants[n % len(tenants)], f"p1-{n}"), range(args.jobs)))
        accept_s = time.perf_counter() - started
        print(
            f"drain: {args.jobs} jobs accepted in {accept_s:.1f}s ({args.jobs / accept_s:,.0f}/s, "
            f"{args.accept_threads} threads)"
        )
        with running.connect() as conn:
            drained = wait_drained(conn, drain_ids, args.drain_timeout)
            drain = phase_figures(conn, drain_ids) | {"accept_per_s": round(args.jobs / accept_s, 1)}
            checks = [Check("drained", drained, f"within {args.drain_timeout:g}s"), *check_order(conn, drain_ids)]
        print(f"drain: {drain}")
        ok &= report_checks(checks)
        figures["drain"] = drain
        table.append(
            [
                "drain",
                drain["jobs"],
                drain["tenants"],
                drain["jobs_per_s"],
                drain["accept_to_start_ms"]["p50"],
                drain["accept_to_start_ms"]["p99"],
            ]
        )

        leftover, consumed_in = wait_broker_empty(args.drain_timeout)
        drain |= {"leftover_wakeups": leftover, "leftover_consumed_seconds": consumed_in}
        print(f"drain: {leftover} wake-ups were still queued in the broker; consumed in {consumed_in}s")

        rate = args.rate
        if rate is None:
            rate = 50.0
            if drain["jobs_per_s"] < 1.25 * rate:
                rate = round(drain["jobs_per_s"] / 2, 1)
                print(f"paced: the workers drain {drain['jobs_per_s']}/s, so 50/s would saturate them; using {rate}/s")
        count = max(1, round(rate * args.paced_seconds))
        paced_ids = []
        begin = time.monotonic()
        for n in range(count):
            time.sleep(max(0.0, begin + n / rate - time.monotonic()))
            paced_ids.append(submit(tenants[(n * 37) % len(tenants)], f"p2-{n}"))
        late = time.monotonic() - (begin + (count - 1) / rate)
        with running.connect() as conn:
            drained = wait_drained(conn, paced_ids, args.drain_timeout)
            paced = phase_figures(conn, paced_ids) | {"rate": rate, "client_behind_schedule_s": round(late, 2)}
            checks = [Check("drained", drained, f"within {args.drain_timeout:g}s"), *check_order(conn, paced_ids)]
        print(f"paced: {paced}")
        ok &= report_checks(checks)
        figures["paced"] = paced
        table.append(
            [
                f"paced {rate:g}/s",
                paced["jobs"],
                paced["tenants"],
                paced["jobs_per_s"],
                paced["accept_to_start_ms"]["p50"],
                paced["accept_to_start_ms"]["p99"],
            ]
        )

    figures["checks_ok"] = ok
    print_table(
        f"job pipeline: 1-lot, 1-sale dry runs; {args.workers} worker(s) x concurrency {args.worker_concurrency} "
        "+ relay",
        ["phase", "jobs", "tenants", "jobs/s", "accept->start p50 ms", "accept->start p99 ms"],
        table,
    )
    print("(drain jobs/s: first created_at to last finished_at; paced jobs/s is the offered rate's outcome)")
    print(f"wrote {write_results('pipeline.json', figures)}")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
