"""The bulk write path's cost under the database walls (docs/security.md, "Bulk writes"): the same rows
COPYed into `run_sales` in one transaction each, three ways, interleaved so that machine noise falls on all
three alike:
- `writer+check`: as `asora_writer`, with the statement check of migration 0013 (what the application does);
- `writer only`: as `asora_writer` with that trigger disabled for the transaction (0005's path, unsafe);
- `staged`: through a temporary table and one INSERT ... SELECT under row-level security.
Each transaction is rolled back, so every round writes into the same table. Prints the median time of each way
and its ratio to `writer only`; judges nothing.

Run: `python -m tests.benchmarks.bench_bulk_write_paths [--rows 200000] [--rounds 5]`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from tests.benchmarks.harness import print_table, scratch_environment
from tests.benchmarks.scratch import write_results

TENANT = "bench-walls"
COLUMNS = ("run_id", "sale_id", "tenant_id", "sku", "sale_date", "quantity", "cogs")
WAYS = ("writer+check", "writer only", "staged")


def _chunks(rows: int) -> list[str]:
    lines = [
        f"run_bench\tS-{n:09d}\t{TENANT}\tSKU-{n % 1000:04d}\t2024-01-01T00:00:00Z\t1.0000\t2.50000000"
        for n in range(rows)
    ]
    return ["\n".join(lines[s : s + 20_000]) + "\n" for s in range(0, rows, 20_000)]


def _once(way: str, chunks: list[str], owner_url: str) -> float:
    import psycopg

    from shared import copyio, db

    if way == "writer only":
        # A trigger's state is the table's: the owner disables it for the round and enables it again.
        with psycopg.connect(owner_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as owner:
            owner.execute("ALTER TABLE run_sales DISABLE TRIGGER run_sales_writer_tenant")
            try:
                return _timed(chunks, copyio, db)
            finally:
                owner.execute("ALTER TABLE run_sales ENABLE TRIGGER run_sales_writer_tenant")
    if way == "staged":
        original = copyio._writer_available
        copyio._writer_available = lambda *_: False
        try:
            return _timed(chunks, copyio, db)
        finally:
            copyio._writer_available = original
    return _timed(chunks, copyio, db)


def _timed(chunks: list[str], copyio: Any, db: Any) -> float:
    with db.get_sessionmaker()() as session:
        session.begin()
        db.set_tenant(session, TENANT)
        started = time.perf_counter()
        copyio.copy_chunks(session, "run_sales", COLUMNS, chunks)
        session.flush()
        elapsed = time.perf_counter() - started
        session.rollback()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    chunks = _chunks(args.rows)
    with scratch_environment() as database_url:
        from shared import db
        from shared.tenants import service as tenants

        with db.unit_of_work() as session:
            tenants.create_tenant(
                session, tenant_id=TENANT, name="bench", plan="enterprise", role_model="standard", actor=None
            )
        _once("writer+check", chunks, database_url)  # warm-up: caches, the first connection, the scope key
        times: dict[str, list[float]] = {way: [] for way in WAYS}
        for _ in range(args.rounds):
            for way in WAYS:
                times[way].append(_once(way, chunks, database_url))
        db.get_engine().dispose()
        db.get_system_engine().dispose()
    base = statistics.median(times["writer only"])
    medians = {way: statistics.median(t) for way, t in times.items()}
    figures = {way: {"median_s": medians[way], "runs_s": t} for way, t in times.items()}
    print_table(
        f"{args.rows:,} rows COPYed into run_sales, {args.rounds} interleaved rounds",
        ("way", "median s", "x writer only"),
        [(way, f"{medians[way]:.2f}", f"{medians[way] / base:.2f}") for way in WAYS],
    )
    print(f"wrote {write_results('bulk_write_paths.json', {'rows': args.rows, 'ways': figures})}")


if __name__ == "__main__":
    main()
