"""API memory benchmark: the resident memory of one API process over `--requests` requests of a mix (per ten:
one small dry-run POST /runs, four GET /jobs/{id}, three GET /runs, two GET /health), sampled every
`--every` requests. A leak shows as steady growth after the warm-up; flat means within a few MB.

The API is one uvicorn process (so its RSS is the whole API), with one worker and the relay beside it; the load
is one continuous wrk run with `wrk/mix.lua` over 10 tenants. RSS is read with psutil when the script's
answer count passes each multiple of `--every` (counted in steps of 100).

Run: `python -m tests.benchmarks.bench_api_memory [--requests 100000] [--every 10000]`. Prints the series and
writes bench-results/api_memory.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.benchmarks.harness import (
    LOT,
    WrkRun,
    create_tenants,
    machine,
    print_table,
    require_wrk,
    running_stack,
    sale,
    write_lines,
)
from tests.benchmarks.scratch import write_results

MB = 1 << 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=10_000)
    parser.add_argument("--from-request", type=int, default=20_000, help="growth is measured from this sample on")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--tenants", type=int, default=10)
    args = parser.parse_args()
    require_wrk()

    at_start = machine()
    samples: list[dict[str, Any]] = []
    with running_stack(api_processes=1) as running, tempfile.TemporaryDirectory() as tmp:
        api = psutil.Process(running.stack.pid("api"))
        tenants = create_tenants(args.tenants, prefix="mem")
        targets = []
        for tenant in tenants:
            with httpx.Client(
                base_url=f"{running.base}/api/v1", headers={"Authorization": f"Bearer {tenant.key}"}
            ) as c:
                answer = c.post("/runs", json={"dry_run": True, "sales_data": [sale("first")], "lots_data": [LOT]})
                assert answer.status_code == 202, answer.text
                targets.append(f"{tenant.key} {answer.json()['job_id']}")
        targets_file = write_lines(Path(tmp) / "targets.txt", targets)

        def sample(at: int) -> None:
            info = api.memory_info()
            samples.append({"requests": at, "rss_mb": round(info.rss / MB, 1), "threads": api.num_threads()})
            print(f"  {at:>9,} requests: RSS {info.rss / MB:7.1f} MB, {api.num_threads()} threads", flush=True)

        sample(0)
        env = {"ASORA_WRK_TARGETS": str(targets_file), "ASORA_WRK_REQUESTS": str(args.requests)}
        wrk = WrkRun("mix.lua", running.base, connections=args.connections, duration_s=24 * 3600, env=env)
        next_sample = args.every
        while next_sample <= args.requests:
            done = wrk.progress()
            if done >= next_sample:
                sample(next_sample)
                next_sample += args.every
            elif wrk.proc.poll() is not None:
                break
            else:
                time.sleep(0.05)
        wrk.interrupt()
        result = wrk.wait()

    base = next((s for s in samples if s["requests"] >= args.from_request), samples[-1])
    growth = samples[-1]["rss_mb"] - base["rss_mb"]
    errors = result.requests - result.count(200) - result.count(202) + sum(result.socket_errors.values())
    figures = {
        "machine": at_start,
        "requests": result.requests,
        "seconds": round(result.duration_s, 1),
        "requests_per_s": round(result.requests / result.duration_s, 1),
        "statuses": result.statuses,
        "socket_errors": result.socket_errors,
        "errors": errors,
        "latency_ms": result.latency_ms,
        "samples": samples,
        "growth_mb": round(growth, 1),
        "growth_from_request": base["requests"],
    }
    print_table(
        f"API RSS (one uvicorn process) over {result.requests:,} requests of the mix, {args.connections} connections",
        ["requests", "RSS MB", "threads"],
        [[s["requests"], s["rss_mb"], s["threads"]] for s in samples],
    )
    print(
        f"\ngrowth from request {base['requests']:,} to {samples[-1]['requests']:,}: {growth:+.1f} MB; "
        f"{figures['requests_per_s']:,} requests/s, statuses {result.statuses}, {errors} errors"
    )
    print(f"wrote {write_results('api_memory.json', figures)}")


if __name__ == "__main__":
    main()
