"""FIFO engine benchmark: 1,000,000 sales over 10,000 SKUs and 200,000 lots, generated from a seed.

Times the vectorised engine (best of 3) against the plain deque FIFO it is checked with, verifies both
give identical results, times the LIFO and moving-average engines on the same inputs with their ratio to
FIFO (issue 15's target: within 2x), and times parsing the same sales from a CSV file. Prints the figures and writes
them to bench-results/fifo_engine.json.

Run: `python -m tests.benchmarks.bench_fifo_engine [--sales N] [--lots N] [--skus N] [--skip-reference]`.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from shared.costing import Method
from shared.costing import allocate as allocate_by
from shared.costing import reference_allocate as reference_by
from shared.runs.csvio import parse_sales_csv
from shared.runs.fifo import FifoResult, LotsBatch, SalesBatch, allocate, reference_allocate

TARGET_SALES_PER_SECOND = 2_000_000
TARGET_METHOD_RATIO = 2.0  # each method's best time over FIFO's
RESULT_FIELDS = ("slice_sale", "slice_lot", "slice_quantity", "slice_amount", "sale_cogs", "lot_consumed")
T = TypeVar("T")


def generate(n_sales: int, n_lots: int, n_skus: int, seed: int = 20240701) -> tuple[SalesBatch, LotsBatch]:
    """Sales at random seconds of 2024 in random order; lots spread over the year, enough at every instant.

    Each SKU gets an opening lot on 1 January and further lots on random dates; every lot holds a
    little more than the SKU sells until its next lot arrives, so no sale is ever short and sales
    regularly straddle two lots.
    """
    rng = np.random.default_rng(seed)
    year_start = np.datetime64("2024-01-01T00:00:00", "s").astype(np.int64)
    year_seconds = 366 * 86_400
    names = [f"SKU-{k:05d}" for k in range(n_skus)]

    lot_sku = np.arange(n_lots) % n_skus
    first_of_sku = np.arange(n_lots) < n_skus
    lot_offset = np.where(first_of_sku, 0, rng.integers(1, year_seconds, n_lots))
    lot_key = lot_sku * year_seconds + lot_offset
    lot_order = np.argsort(lot_key, kind="stable")

    sale_sku = rng.integers(0, n_skus, n_sales)
    sale_offset = rng.integers(1, year_seconds, n_sales)
    whole_units = rng.integers(1, 21, n_sales) * 10_000
    sale_qty = np.where(rng.random(n_sales) < 0.1, whole_units // 2 + 2_500, whole_units)

    # The lot each sale falls under (the latest received at or before it), and the demand per lot.
    covering = lot_order[np.searchsorted(lot_key[lot_order], sale_sku * year_seconds + sale_offset, side="right") - 1]
    demand = np.zeros(n_lots, np.int64)
    np.add.at(demand, covering, sale_qty)
    lot_qty = demand + demand // 10 + rng.integers(1, 5, n_lots) * 10_000

    shuffle = rng.permutation(n_lots)
    sales = SalesBatch(
        row=np.arange(1, n_sales + 1, dtype=np.int64),
        sale_id=[f"S{k:08d}" for k in range(n_sales)],
        sku=[names[k] for k in sale_sku.tolist()],
        sale_date=(year_start + sale_offset).astype("datetime64[s]").astype("datetime64[us]"),
        quantity=sale_qty.astype(np.int64),
    )
    lots = LotsBatch(
        row=np.arange(1, n_lots + 1, dtype=np.int64),
        lot_id=[f"L{k:07d}" for k in shuffle.tolist()],
        sku=[names[k] for k in lot_sku[shuffle].tolist()],
        received_date=(year_start + lot_offset[shuffle]).astype("datetime64[s]").astype("datetime64[us]"),
        quantity=lot_qty[shuffle],
        unit_cost=rng.integers(5_000, 5_000_000, n_lots),  # 0.5000 to 500.0000 per unit
    )
    return sales, lots


def timed(function: Callable[[], T], repeat: int) -> tuple[T, list[float], list[float]]:
    """The last result, and wall-clock and process CPU seconds per run (CPU time is the steadier
    figure on a shared machine)."""
    wall: list[float] = []
    cpu: list[float] = []
    result: T | None = None
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = function()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    assert result is not None
    return result, wall, cpu


def identical(a: FifoResult, b: FifoResult) -> bool:
    return a.errors == b.errors and all(np.array_equal(getattr(a, name), getattr(b, name)) for name in RESULT_FIELDS)


def write_sales_csv(path: Path, sales: SalesBatch) -> None:
    stamps = np.datetime_as_string(sales.sale_date, unit="s").tolist()
    quantities = [f"{q // 10_000}.{q % 10_000:04d}".rstrip("0").rstrip(".") for q in sales.quantity.tolist()]
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("sale_id,sku,sale_date,quantity_sold\n")
        out.writelines(
            f"{sale_id},{sku},{stamp}Z,{quantity}\n"
            for sale_id, sku, stamp, quantity in zip(sales.sale_id, sales.sku, stamps, quantities, strict=True)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sales", type=int, default=1_000_000)
    parser.add_argument("--lots", type=int, default=200_000)
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-reference", action="store_true", help="do not run the slow deque FIFO")
    parser.add_argument("--output", type=Path, default=Path("bench-results/fifo_engine.json"))
    args = parser.parse_args()

    started = time.perf_counter()
    sales, lots = generate(args.sales, args.lots, args.skus)
    print(
        f"generated {len(sales):,} sales, {len(lots):,} lots, {args.skus:,} SKUs "
        f"in {time.perf_counter() - started:.1f}s"
    )

    result, engine_runs, engine_cpu = timed(lambda: allocate(sales, lots), args.repeat)
    assert result.ok, result.errors[:3]
    engine_best = min(engine_runs)
    figures: dict[str, object] = {
        "sales": len(sales),
        "lots": len(lots),
        "skus": args.skus,
        "slices": int(result.slice_sale.size),
        "total_cogs": str(result.total_cogs),
        "engine_seconds": [round(t, 4) for t in engine_runs],
        "engine_best_seconds": round(engine_best, 4),
        "engine_sales_per_second": round(len(sales) / engine_best),
        "engine_cpu_seconds": [round(t, 4) for t in engine_cpu],
        "engine_sales_per_cpu_second": round(len(sales) / min(engine_cpu)),
        "target_sales_per_second": TARGET_SALES_PER_SECOND,
        "meets_target": len(sales) / engine_best >= TARGET_SALES_PER_SECOND,
    }
    print(
        f"vectorised engine: best {engine_best:.3f}s of {args.repeat} -> {len(sales) / engine_best:,.0f} sales/s "
        f"(CPU {min(engine_cpu):.3f}s -> {len(sales) / min(engine_cpu):,.0f} sales per CPU second)"
    )

    if not args.skip_reference:
        reference, reference_runs, _ = timed(lambda: reference_allocate(sales, lots), 1)
        same = identical(result, reference)
        figures |= {
            "reference_seconds": round(reference_runs[0], 4),
            "reference_sales_per_second": round(len(sales) / reference_runs[0]),
            "speedup": round(reference_runs[0] / engine_best, 1),
            "identical_to_reference": same,
        }
        print(
            f"deque reference:   {reference_runs[0]:.3f}s -> {len(sales) / reference_runs[0]:,.0f} sales/s "
            f"({reference_runs[0] / engine_best:.0f}x slower); identical results: {same}"
        )
        if not same:
            raise SystemExit("the vectorised engine and the reference disagree")

    methods: dict[str, object] = {}
    for method in (Method.LIFO, Method.MOVING_AVERAGE):
        costed, method_runs, method_cpu = timed(functools.partial(allocate_by, method, sales, lots), args.repeat)
        assert costed.ok, costed.errors[:3]
        assert costed.total_quantity == result.total_quantity
        ratio = min(method_runs) / engine_best
        methods[method.value] = {
            "seconds": [round(t, 4) for t in method_runs],
            "best_seconds": round(min(method_runs), 4),
            "cpu_seconds": [round(t, 4) for t in method_cpu],
            "ratio_to_fifo": round(ratio, 2),
            "cpu_ratio_to_fifo": round(min(method_cpu) / min(engine_cpu), 2),
            "meets_target": ratio <= TARGET_METHOD_RATIO,
            "slices": int(costed.slice_sale.size),
            "total_cogs": str(costed.total_cogs),
        }
        print(
            f"{method.value + ':':18} best {min(method_runs):.3f}s of {args.repeat} -> {ratio:.2f}x FIFO "
            f"(CPU {min(method_cpu) / min(engine_cpu):.2f}x; target {TARGET_METHOD_RATIO:.0f}x)"
        )
        if not args.skip_reference:
            plain, plain_runs, _ = timed(functools.partial(reference_by, method, sales, lots), 1)
            same = identical(costed, plain)
            methods[method.value] |= {"reference_seconds": round(plain_runs[0], 4), "identical_to_reference": same}  # type: ignore[operator]
            print(f"{'  plain ' + method.value + ':':18} {plain_runs[0]:.3f}s; identical results: {same}")
            if not same:
                raise SystemExit(f"the {method.value} engine and its plain implementation disagree")
    figures["methods"] = methods

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "sales.csv"
        write_sales_csv(path, sales)
        size = path.stat().st_size

        def parse() -> SalesBatch:
            with path.open("rb") as stream:
                parsed = parse_sales_csv(stream)
            assert parsed.errors == []
            return parsed.batch

        batch, parse_runs, parse_cpu = timed(parse, args.repeat)
    assert batch.sale_id == sales.sale_id
    assert np.array_equal(batch.quantity, sales.quantity)
    assert np.array_equal(batch.sale_date, sales.sale_date)
    parse_best = min(parse_runs)
    figures |= {
        "csv_bytes": size,
        "csv_parse_seconds": [round(t, 4) for t in parse_runs],
        "csv_parse_best_seconds": round(parse_best, 4),
        "csv_parse_rows_per_second": round(len(sales) / parse_best),
        "csv_parse_cpu_seconds": [round(t, 4) for t in parse_cpu],
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    print(
        f"parse_sales_csv:   best {parse_best:.3f}s of {args.repeat} for {size / 1e6:.1f} MB "
        f"-> {len(sales) / parse_best:,.0f} rows/s"
    )

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
