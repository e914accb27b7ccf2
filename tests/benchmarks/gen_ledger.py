"""Bulk-load a realistic ledger for one tenant: by default 10,000 SKUs and 5,000,000 ledger events (50 lots
received per SKU, 449 issue slices and one shrink consuming the oldest 48 lots first in first out), the
matching lots, items, hubs and bins, a valid hash chain and the ledger head.

Loads with COPY as the table owner (a superuser or BYPASSRLS role: COPY into a table with row-level
security needs one; the embedded server's user is a superuser). With `rebuild_indexes` the secondary
indexes of ledger_events and lots are dropped for the load and rebuilt after it, as a bulk load should.

Run alone: `python -m tests.benchmarks.gen_ledger DSN [--tenant-id bench] [--skus N] [--events-per-sku N]`
against a migrated database; bench_reports.py calls `generate` on a scratch database.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from shared.decimals import AMOUNT_SCALE, COST_SCALE, QTY_SCALE, format_scaled
from shared.ledger.canonical import COLUMNS, GENESIS_HASH, HASH_PREFIX, canonical, chain_hash

START = datetime(2023, 1, 1, tzinfo=UTC)
LOT_QUANTITY = 100 * 10**QTY_SCALE
JOB_ID = "job_bench_generator"
HUBS, BINS, VENDORS = 5, 100, 50
LOT_COLUMNS = (
    "tenant_id",
    "lot_id",
    "sku",
    "bin_id",
    "vendor_id",
    "received_at",
    "original_quantity",
    "received_quantity",
    "unit_price",
    "freight_cost_per_unit",
    "unit_cost",
    "remaining_quantity",
    "status",
    "source_job_id",
    "receipt_seq",
)


@dataclass(frozen=True)
class Shape:
    skus: int = 10_000
    events_per_sku: int = 500
    lots_per_sku: int = 50

    def __post_init__(self) -> None:
        if self.lots_per_sku < 3 or self.events_per_sku <= self.lots_per_sku:
            raise ValueError("need at least 3 lots and more events than lots per SKU")
        if (self.events_per_sku - self.lots_per_sku) > (self.lots_per_sku - 2) * 24:
            raise ValueError("too many issues for the lots (at most 24 slices per lot)")

    @property
    def events(self) -> int:
        return self.skus * self.events_per_sku


def _slices(total: int, parts: int) -> list[int]:
    base = total // parts
    return [base] * (parts - 1) + [total - base * (parts - 1)]


def _rows(tenant_id: str, shape: Shape, stats: dict[str, Any]) -> tuple[Iterator[str], list[str]]:
    """Ledger rows as COPY text lines (generated lazily) and lot rows (collected as the events stream)."""
    lots: list[str] = []

    def events() -> Iterator[str]:
        seq, prev = 0, GENESIS_HASH
        quantity_text: dict[int, str] = {}
        consumed_lots = shape.lots_per_sku - 2
        slices_per_lot = _slices(shape.events_per_sku - shape.lots_per_sku, consumed_lots)
        for s in range(shape.skus):
            sku = f"SKU-{s:05d}"
            bin_id = f"{tenant_id}-bin-{s % BINS:03d}"
            vendor = f"{tenant_id}-vendor-{s % VENDORS:02d}"
            for k in range(shape.lots_per_sku):
                lot_id = f"L{s:05d}-{k:03d}"
                received_at = START + timedelta(days=7 * k, minutes=s % 1440)
                cost = 10_000 + (s % 89) * 2_500 + k * 125
                todo: list[tuple[str, int, datetime, str | None, str | None]] = [
                    ("RECEIPT", LOT_QUANTITY, received_at, lot_id, bin_id)
                ]
                if k < consumed_lots:
                    quantities = _slices(LOT_QUANTITY, slices_per_lot[k])
                    for j, q in enumerate(quantities):
                        at = received_at + timedelta(hours=6 * (j + 1))
                        if k == 0 and j == len(quantities) - 1:  # one shrink per SKU, found by a count
                            todo.append(("ADJUSTMENT", -q, at, f"count-{s}", bin_id))
                        else:
                            todo.append(("ISSUE", -q, at, f"S{s:05d}-{k:03d}-{j:02d}", None))
                receipt_seq = seq + 1
                unit_cost = format_scaled(cost, COST_SCALE)
                for kind, q, at, reference, event_bin in todo:
                    seq += 1
                    quantity = quantity_text.get(q) or quantity_text.setdefault(q, format_scaled(q, QTY_SCALE))
                    amount = format_scaled(q * cost, AMOUNT_SCALE)
                    # the canonical form is also the event's COPY row: the row is what was hashed
                    form = canonical(
                        tenant_id, seq, kind, sku, lot_id, event_bin, quantity, unit_cost, amount, at,
                        JOB_ID, None, reference, None,
                    )  # fmt: skip
                    digest = chain_hash(prev, form)
                    yield f"{form}\t{HASH_PREFIX}{digest}\n"
                    prev = digest
                remaining = 0 if k < consumed_lots else LOT_QUANTITY
                lots.append(
                    "\t".join(
                        (
                            tenant_id,
                            lot_id,
                            sku,
                            bin_id,
                            vendor,
                            received_at.isoformat(),
                            format_scaled(LOT_QUANTITY, QTY_SCALE),
                            format_scaled(LOT_QUANTITY, QTY_SCALE),
                            format_scaled(cost, COST_SCALE),
                            "0",
                            format_scaled(cost, COST_SCALE),
                            format_scaled(remaining, QTY_SCALE),
                            "live",
                            JOB_ID,
                            str(receipt_seq),
                        )
                    )
                    + "\n"
                )
        stats["head"] = (seq, prev)

    return events(), lots


def _copy_lines(
    cur: psycopg.Cursor[Any], table: str, columns: tuple[str, ...], lines: Iterator[str] | list[str]
) -> int:
    count = 0
    chunk: list[str] = []
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for line in lines:
            chunk.append(line)
            if len(chunk) == 20_000:
                copy.write("".join(chunk))
                count += len(chunk)
                chunk.clear()
        copy.write("".join(chunk))
        count += len(chunk)
    return count


def _secondary_indexes(cur: psycopg.Cursor[Any], tables: tuple[str, ...]) -> list[tuple[str, str]]:
    cur.execute(
        """SELECT i.indexname, i.indexdef FROM pg_indexes i
           WHERE i.schemaname = 'public' AND i.tablename = ANY(%s)
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)""",
        (list(tables),),
    )
    return [(str(r[0]), str(r[1])) for r in cur.fetchall()]


def generate(
    dsn: str, tenant_id: str = "bench", shape: Shape | None = None, *, rebuild_indexes: bool = True
) -> dict[str, Any]:
    """Create the tenant and load its ledger; returns counts and timings."""
    shape = shape or Shape()
    stats: dict[str, Any] = {"tenant_id": tenant_id, "skus": shape.skus, "events": shape.events}
    started = time.perf_counter()
    with psycopg.connect(dsn.replace("postgresql+psycopg://", "postgresql://")) as conn, conn.cursor() as cur:
        cur.execute("SELECT set_config('asora.tenant_id', '*', false)")
        cur.execute("SET synchronous_commit = off")
        cur.execute("SET maintenance_work_mem = '512MB'")
        cur.execute(
            "INSERT INTO tenants (id, name, plan, role_model) VALUES (%s, %s, 'enterprise', 'standard')",
            (tenant_id, tenant_id),
        )
        cur.execute("INSERT INTO tenant_counters (tenant_id) VALUES (%s)", (tenant_id,))
        cur.execute("INSERT INTO ledger_heads (tenant_id) VALUES (%s)", (tenant_id,))
        category = f"{tenant_id}-cat"
        cur.execute("INSERT INTO categories (id, tenant_id, name) VALUES (%s, %s, 'general')", (category, tenant_id))
        _copy_lines(
            cur,
            "hubs",
            ("id", "tenant_id", "name"),
            [f"{tenant_id}-hub-{h}\t{tenant_id}\thub {h}\n" for h in range(HUBS)],
        )
        _copy_lines(
            cur,
            "bins",
            ("id", "tenant_id", "hub_id", "name"),
            [f"{tenant_id}-bin-{b:03d}\t{tenant_id}\t{tenant_id}-hub-{b % HUBS}\tbin {b}\n" for b in range(BINS)],
        )
        _copy_lines(
            cur,
            "items",
            ("id", "tenant_id", "sku", "name", "category_id"),
            [f"{tenant_id}-item-{s:05d}\t{tenant_id}\tSKU-{s:05d}\tItem {s}\t{category}\n" for s in range(shape.skus)],
        )
        dropped = _secondary_indexes(cur, ("ledger_events", "lots")) if rebuild_indexes else []
        for name, _ in dropped:
            cur.execute(f"DROP INDEX {name}")
        events, lots = _rows(tenant_id, shape, stats)
        t0 = time.perf_counter()
        stats["ledger_rows"] = _copy_lines(cur, "ledger_events", COLUMNS, events)
        stats["lots"] = _copy_lines(cur, "lots", LOT_COLUMNS, lots)
        stats["copy_seconds"] = round(time.perf_counter() - t0, 2)
        seq, head = stats.pop("head")
        cur.execute("UPDATE ledger_heads SET seq = %s, hash = %s WHERE tenant_id = %s", (seq, head, tenant_id))
        t0 = time.perf_counter()
        for _, definition in dropped:
            cur.execute(definition)
        stats["index_seconds"] = round(time.perf_counter() - t0, 2)
        conn.commit()
        conn.autocommit = True
        # What autovacuum does to a settled database: statistics, and the visibility map that lets the
        # reports' covering indexes answer without visiting the heap.
        for table in ("ledger_events", "lots", "items", "bins"):
            cur.execute(f"VACUUM (ANALYZE) {table}")
        stats["vacuum_seconds"] = round(time.perf_counter() - t0 - stats["index_seconds"], 2)
    stats["total_seconds"] = round(time.perf_counter() - started, 2)
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dsn")
    parser.add_argument("--tenant-id", default="bench")
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--events-per-sku", type=int, default=500)
    parser.add_argument("--lots-per-sku", type=int, default=50)
    args = parser.parse_args()
    shape = Shape(args.skus, args.events_per_sku, args.lots_per_sku)
    print(generate(args.dsn, args.tenant_id, shape))


if __name__ == "__main__":
    main()
