"""What one small job costs a worker: transactions, SQL statements and CPU, for one tenant's drain.

`--jobs` one-lot, one-sale dry runs are recorded for one tenant exactly as the API records them
(`tests.support.submit_run_direct`), then drained in this process by the runner itself (`shared.jobs.runner`,
no Celery, no broker round trip), with SQLAlchemy hooks counting statements and commits. Reports per job:
commits, statements (and the statements by kind), this process's CPU and the wall time. The worker's Celery
overhead comes on top; `bench_pipeline` measures the whole pipeline.

Run: `python -m tests.benchmarks.bench_job_cost [--jobs 200] [--top 30] [--profile FILE]` (`--profile` writes
a cProfile of the drain: `python -m pstats FILE`). Prints a table and writes
bench-results/job_cost.json. Uses ASORA_DATABASE_URL / ASORA_REDIS_URL when set, embedded servers otherwise.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import time
from collections import Counter
from typing import Any

import redis
from sqlalchemy import event, text

from tests.benchmarks.harness import LOT, create_tenants, machine, print_table, sale, scratch_environment
from tests.benchmarks.scratch import write_results


def _shape(statement: str) -> str:
    return " ".join(statement.split())[:100]


def measure(jobs: int, profile: str | None = None) -> dict[str, Any]:
    from shared import db, registry
    from shared.config import get_settings
    from shared.jobs import runner
    from tests.support import submit_run_direct

    [tenant] = create_tenants(1, prefix="cost")
    for n in range(jobs):
        submit_run_direct(tenant.tenant_id, [sale(f"s-{n}")], [dict(LOT)], dry_run=True)

    statements: Counter[str] = Counter()
    commits = 0
    engine = db.get_engine()

    def counted(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements[_shape(statement)] += 1

    def committed(_conn: Any) -> None:
        nonlocal commits
        commits += 1

    event.listen(engine, "before_cursor_execute", counted)
    event.listen(engine, "commit", committed)
    client = redis.Redis.from_url(os.environ["ASORA_REDIS_URL"])
    profiler = cProfile.Profile(time.process_time) if profile else None  # CPU time, not wall
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        if profiler is not None:
            profiler.enable()
        executed = runner.drain_tenant(
            tenant.tenant_id,
            worker="bench-job-cost",
            redis_client=client,
            settings=get_settings(),
            kinds=registry.TABLE,
        )
    finally:
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if profiler is not None and profile:
            profiler.disable()
            profiler.dump_stats(profile)
        event.remove(engine, "before_cursor_execute", counted)
        event.remove(engine, "commit", committed)
        client.close()
    with db.unit_of_work(tenant.tenant_id) as session:
        statuses = Counter(
            session.execute(text("SELECT status FROM jobs WHERE tenant_id = :t"), {"t": tenant.tenant_id}).scalars()
        )
    if executed != jobs or statuses != Counter({"completed": jobs}):
        raise SystemExit(f"EXPECTED {jobs} COMPLETED JOBS, GOT {dict(statuses)} ({executed} executed)")
    return {
        "jobs": jobs,
        "commits_per_job": commits / jobs,
        "statements_per_job": sum(statements.values()) / jobs,
        "cpu_ms_per_job": cpu / jobs * 1000,
        "wall_ms_per_job": wall / jobs * 1000,
        "statements": {shape: count / jobs for shape, count in statements.most_common()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--top", type=int, default=30, help="how many statement shapes to list")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the drain here (its CPU figure rises)")
    args = parser.parse_args()
    with scratch_environment():
        figures = measure(args.jobs, args.profile)
    figures["machine"] = machine()
    print_table(
        "one small job (1 lot, 1 sale, dry run), drained in process",
        ["jobs", "commits/job", "statements/job", "cpu ms/job", "wall ms/job"],
        [
            [
                figures["jobs"],
                f"{figures['commits_per_job']:.2f}",
                f"{figures['statements_per_job']:.1f}",
                figures["cpu_ms_per_job"],
                figures["wall_ms_per_job"],
            ]
        ],
    )
    top = list(figures["statements"].items())[: args.top]
    print_table("statements per job, by shape", ["per job", "statement"], [[f"{n:.2f}", s] for s, n in top])
    print(f"wrote {write_results('job_cost.json', figures)}")


if __name__ == "__main__":
    main()
