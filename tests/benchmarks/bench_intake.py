"""Intake benchmark: how many `POST /api/v1/runs` (a one-lot, one-sale JSON dry run) the API accepts per
second, and at what latency, with 10 and 50 clients, for one tenant and for the load spread over 100 tenants.

The stack runs as in production, from a migrated scratch database: the API as uvicorn with `--api-processes`
processes, one Celery worker and the relay beside it (the worker executes the accepted dry runs meanwhile).
The load is wrk with `wrk/runs.lua` on loopback. During each 50-client row a separate client polls
`GET /api/v1/jobs/{id}` at a steady rate and its latency is printed. After every row the database is checked:
each tenant's `jobs.seq` is gapless 1..n, and no job is numbered before one its client had already seen
accepted. A failed check is printed loudly and the benchmark exits 1.

Run: `python -m tests.benchmarks.bench_intake [--duration 12] [--api-processes 2]`. Uses ASORA_DATABASE_URL /
ASORA_REDIS_URL when set, embedded servers otherwise. Prints a table and writes bench-results/intake.json.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.benchmarks.harness import (
    BenchTenant,
    Running,
    WrkResult,
    check_acceptance_order,
    check_gapless,
    create_tenants,
    created_at_inversions,
    machine,
    percentile,
    print_table,
    report_checks,
    require_wrk,
    run_wrk,
    running_stack,
    write_lines,
)
from tests.benchmarks.scratch import write_results


class JobProbe(threading.Thread):
    """A separate client: `GET /jobs/{id}` at a steady rate (not as fast as it can: it measures, it does not
    add load), cycling over jobs of one tenant."""

    def __init__(self, base: str, tenant: BenchTenant, job_ids: list[str], rate: float) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(
            base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {tenant.key}"}, timeout=60
        )
        self.job_ids, self.interval = job_ids, 1 / rate
        self.latencies_ms: list[float] = []
        self.failures = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        n = 0
        next_at = time.monotonic()
        while not self.stopped.is_set():
            started = time.perf_counter()
            try:
                ok = self.client.get(f"/jobs/{self.job_ids[n % len(self.job_ids)]}").status_code == 200
            except httpx.HTTPError:
                ok = False
            self.latencies_ms.append((time.perf_counter() - started) * 1000)
            self.failures += not ok
            n += 1
            next_at += self.interval
            self.stopped.wait(max(0.0, next_at - time.monotonic()))

    def finish(self) -> dict[str, Any]:
        self.stopped.set()
        self.join()
        self.client.close()
        lat = self.latencies_ms or [0.0]
        return {
            "requests": len(self.latencies_ms),
            "failures": self.failures,
            "p50_ms": round(percentile(lat, 50), 1),
            "p99_ms": round(percentile(lat, 99), 1),
            "max_ms": round(max(lat), 1),
        }


_SAMPLE = re.compile(r"^(\w+)(\{[^}]*\})? (\S+)$", re.MULTILINE)


def scrape(base: str) -> dict[str, float]:
    """The counters the critical-section share is computed from, summed over the API's processes."""
    wanted = {
        ("asora_intake_counter_hold_seconds_sum", ""): "hold_s",
        ("asora_intake_counter_hold_seconds_count", ""): "holds",
        ("asora_http_request_duration_seconds_sum", '{method="POST",route="/runs"}'): "request_s",
        ("asora_http_request_duration_seconds_count", '{method="POST",route="/runs"}'): "requests",
    }
    text = httpx.get(f"{base}/metrics", timeout=30).text
    found = dict.fromkeys(wanted.values(), 0.0)
    for match in _SAMPLE.finditer(text):
        key = wanted.get((match.group(1), match.group(2) or ""))
        if key:
            found[key] = float(match.group(3))
    return found


def critical_section(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """The tenant's counter is held from the numbering statement to the end of COMMIT: its share of the time
    requests spent in the API, and the mean hold per accepted job."""
    hold, holds = after["hold_s"] - before["hold_s"], after["holds"] - before["holds"]
    request = after["request_s"] - before["request_s"]
    return {
        "mean_hold_ms": round(1000 * hold / holds, 2) if holds else None,
        "share_of_request_time": round(hold / request, 4) if request else None,
    }


def wait_idle(running: Running, timeout: float = 300) -> float:
    """Let the worker finish the backlog, so every row starts from an idle worker; returns the seconds waited."""
    started = time.monotonic()
    with running.connect() as conn:
        while time.monotonic() - started < timeout:
            row = conn.execute("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')").fetchone()
            if row is not None and row[0] == 0:
                break
            time.sleep(0.5)
    return round(time.monotonic() - started, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=12, help="seconds per row")
    parser.add_argument("--warmup", type=float, default=4, help="seconds of warm-up before the first row")
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--tenants", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--api-processes", type=int, default=2, help="uvicorn --workers (2 cores here)")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--probe-rate", type=float, default=20, help="GET /jobs/{id} per second during a row")
    args = parser.parse_args()
    require_wrk()

    figures: dict[str, Any] = {"machine": machine(), "duration_s": args.duration, "rows": []}
    ok = True
    with running_stack(api_processes=args.api_processes) as running, tempfile.TemporaryDirectory() as tmp:
        figures |= {"api_processes": running.api_processes, "worker_concurrency": running.worker_concurrency}
        tenants = create_tenants(max(args.tenants))
        key_files = {
            n: write_lines(Path(tmp) / f"keys-{n}.txt", [f"{t.tenant_id} {t.key}" for t in tenants[:n]])
            for n in args.tenants
        }
        wrk_threads = args.wrk_threads

        def load(tag: str, clients: int, n_tenants: int, seconds: float) -> WrkResult:
            env = {"ASORA_WRK_KEYS": str(key_files[n_tenants]), "ASORA_WRK_TAG": tag}
            return run_wrk(
                "runs.lua", running.base, connections=clients, duration_s=seconds, threads=wrk_threads, env=env
            )

        warm = load("warm", min(args.clients), min(args.tenants), args.warmup)
        probe_jobs = [job for answers in warm.answers.values() for job in answers if job]
        if not probe_jobs:
            raise SystemExit(f"the warm-up had no request accepted: {warm.statuses} {warm.socket_errors}")
        print(f"warm-up: {warm.count(202)} accepted in {warm.duration_s:.1f}s; statuses {warm.statuses}")
        with running.connect() as conn:
            order = check_acceptance_order(conn, "warm", warm)  # first: it waits for requests in flight
            ok &= report_checks([check_gapless(conn), *order])

        table = []
        for n_tenants in args.tenants:
            for clients in args.clients:
                idle_wait = wait_idle(running)
                tag = f"c{clients}t{n_tenants}"
                probe = None
                if clients == max(args.clients):
                    probe = JobProbe(running.base, tenants[0], probe_jobs, args.probe_rate)
                    probe.start()
                counters = scrape(running.base)
                result = load(tag, clients, n_tenants, args.duration)
                held = critical_section(counters, scrape(running.base))
                probed = probe.finish() if probe else None
                accepted = result.count(202)
                row: dict[str, Any] = {
                    "clients": clients,
                    "tenants": n_tenants,
                    "seconds": round(result.duration_s, 2),
                    "accepted": accepted,
                    "accepted_per_s": round(accepted / result.duration_s, 1),
                    "latency_ms": result.latency_ms,
                    "errors": result.errors(202),
                    "statuses": result.statuses,
                    "socket_errors": result.socket_errors,
                    "idle_wait_before_s": idle_wait,
                    "get_job_probe": probed,
                    "counter_hold": held,
                }
                figures["rows"].append(row)
                print(
                    f"{tag}: {accepted} accepted in {result.duration_s:.1f}s, statuses {result.statuses}, "
                    f"socket errors {result.socket_errors}"
                )
                if probed:
                    print(
                        f"  GET /jobs/{{id}} beside it ({args.probe_rate:g}/s): p50 {probed['p50_ms']} ms, "
                        f"p99 {probed['p99_ms']} ms, max {probed['max_ms']} ms over {probed['requests']} "
                        f"requests, {probed['failures']} not 200"
                    )
                with running.connect() as conn:
                    order = check_acceptance_order(conn, tag, result)
                    checks = [check_gapless(conn), *order]
                row["checks_ok"] = report_checks(checks)
                ok &= row["checks_ok"]
                lat = result.latency_ms
                table.append(
                    [
                        clients,
                        n_tenants,
                        row["accepted_per_s"],
                        lat["p50"],
                        lat["p99"],
                        lat["max"],
                        row["errors"],
                        f"{probed['p99_ms']:.1f}" if probed else "-",
                        held["mean_hold_ms"],
                        f"{100 * held['share_of_request_time']:.1f}%" if held["share_of_request_time"] else "-",
                        "ok" if row["checks_ok"] else "FAILED",
                    ]
                )
        with running.connect() as conn:
            inverted, pairs = created_at_inversions(conn)
    figures |= {"created_at_inversions": inverted, "consecutive_pairs": pairs, "checks_ok": ok}
    print_table(
        f"POST /api/v1/runs (1-lot, 1-sale dry run), {args.duration:g}s per row, API x{running.api_processes}, "
        f"1 worker (concurrency {running.worker_concurrency}) + relay",
        [
            "clients",
            "tenants",
            "accepted/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "errors",
            "GET job p99 ms",
            "hold ms",
            "hold share",
            "order",
        ],
        table,
    )
    print(
        f"\n(hold: the tenant's job counter, from the numbering statement to the end of COMMIT, mean per job and "
        f"as a share of the time POST /runs spent in the API; created_at, the moment of numbering, runs backwards "
        f"in {inverted} of {pairs} consecutive job pairs)"
    )
    print(f"wrote {write_results('intake.json', figures)}")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
