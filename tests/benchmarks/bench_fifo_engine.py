"""FIFO engine benchmark: 1,000,000 sales over 10,000 SKUs and 200,000 lots, generated from a seed.

Times every costing method's engine on the same inputs side by side: each repeat runs FIFO, LIFO and moving
average one after the other, so a burst of load on the shared machine hits all three alike; each method's
figure is its best wall and best CPU time over the repeats, and its ratio is to FIFO's best (issue 15's target:
within 2x). Prints that table, checks each engine against its plain one-sale-at-a-time implementation (the deque
FIFO, the LIFO stack, the moving-average pool), and times parsing the same sales from a CSV file. Writes the
figures to bench-results/fifo_engine.json.

Run: `python -m tests.benchmarks.bench_fifo_engine [--sales N] [--lots N] [--skus N] [--repeat N] [--skip-reference]`.
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
from shared.runs.fifo import FifoResult, LotsBatch, SalesBatch

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

    # Interleaved: one run of each method per repeat (FIFO first), best of the repeats per method.
    wall: dict[Method, list[float]] = {method: [] for method in Method}
    cpu: dict[Method, list[float]] = {method: [] for method in Method}
    costed: dict[Method, FifoResult] = {}
    for _ in range(args.repeat):
        for method in Method:
            costed[method], method_wall, method_cpu = timed(functools.partial(allocate_by, method, sales, lots), 1)
            wall[method] += method_wall
            cpu[method] += method_cpu
    result = costed[Method.FIFO]
    assert result.ok, result.errors[:3]
    engine_best, engine_cpu_best = min(wall[Method.FIFO]), min(cpu[Method.FIFO])
    figures: dict[str, object] = {
        "sales": len(sales),
        "lots": len(lots),
        "skus": args.skus,
        "repeat": args.repeat,
        "slices": int(result.slice_sale.size),
        "total_cogs": str(result.total_cogs),
        "engine_seconds": [round(t, 4) for t in wall[Method.FIFO]],
        "engine_best_seconds": round(engine_best, 4),
        "engine_sales_per_second": round(len(sales) / engine_best),
        "engine_cpu_seconds": [round(t, 4) for t in cpu[Method.FIFO]],
        "engine_sales_per_cpu_second": round(len(sales) / engine_cpu_best),
        "target_sales_per_second": TARGET_SALES_PER_SECOND,
        "meets_target": len(sales) / engine_best >= TARGET_SALES_PER_SECOND,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    methods: dict[str, dict[str, object]] = {}
    print(f"best of {args.repeat} interleaved repeats (load average {os.getloadavg()[0]:.2f}):")
    print(f"  {'method':16} {'wall s':>8} {'CPU s':>8} {'wall/FIFO':>10} {'CPU/FIFO':>9}  target")
    for method in Method:
        done = costed[method]
        assert done.ok, done.errors[:3]
        assert done.total_quantity == result.total_quantity
        ratio, cpu_ratio = min(wall[method]) / engine_best, min(cpu[method]) / engine_cpu_best
        methods[method.value] = {
            "seconds": [round(t, 4) for t in wall[method]],
            "best_seconds": round(min(wall[method]), 4),
            "cpu_seconds": [round(t, 4) for t in cpu[method]],
            "best_cpu_seconds": round(min(cpu[method]), 4),
            "ratio_to_fifo": round(ratio, 2),
            "cpu_ratio_to_fifo": round(cpu_ratio, 2),
            "meets_target": ratio <= TARGET_METHOD_RATIO and cpu_ratio <= TARGET_METHOD_RATIO,
            "slices": int(done.slice_sale.size),
            "total_cogs": str(done.total_cogs),
        }
        verdict = "met" if methods[method.value]["meets_target"] else "MISSED"
        print(
            f"  {method.value:16} {min(wall[method]):8.3f} {min(cpu[method]):8.3f} {ratio:9.2f}x {cpu_ratio:8.2f}x"
            f"  {TARGET_METHOD_RATIO:.0f}x {verdict if method is not Method.FIFO else '-'}"
        )
    print(f"  FIFO: {len(sales) / engine_best:,.0f} sales/s, {len(sales) / engine_cpu_best:,.0f} per CPU second")

    if not args.skip_reference:
        for method in Method:
            plain, plain_runs, _ = timed(functools.partial(reference_by, method, sales, lots), 1)
            same = identical(costed[method], plain)
            methods[method.value] |= {"reference_seconds": round(plain_runs[0], 4), "identical_to_reference": same}
            print(f"  plain {method.value + ':':17} {plain_runs[0]:.3f}s; identical results: {same}")
            if not same:
                raise SystemExit(f"the {method.value} engine and its plain implementation disagree")
        reference_seconds = methods[Method.FIFO.value]["reference_seconds"]
        assert isinstance(reference_seconds, float)
        figures |= {
            "reference_seconds": reference_seconds,
            "reference_sales_per_second": round(len(sales) / reference_seconds),
            "speedup": round(reference_seconds / engine_best, 1),
            "identical_to_reference": True,
        }
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
