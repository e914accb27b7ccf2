"""Our API against the floor of its own stack, side by side in one run: how many requests per second uvicorn
(httptools, uvloop) with FastAPI serves on this machine when a route does nothing, and when it does a
tenant-scoped read's core (a transaction-local setting, one SELECT, COMMIT) through SQLAlchemy's ORM session,
its Core connection, plain psycopg in the threadpool, or async psycopg on the loop (`floor_app.py`); then our
`GET /api/v1/jobs/{id}` (authentication from the key cache, the tenant's signed scope, row-level security, the
job by primary key, the access log and metrics) on the running stack. Every server gets the same number of
processes and wrk the same clients; the table gives each route's figure as a ratio to the ORM-session floor.

It says what a request costs before any code of ours runs, which bounds what intake can reach: a route that
does less than the ORM-session floor cannot be served faster than it on the same machine.

Run: `python -m tests.benchmarks.bench_http_floor [--duration 8] [--clients 50] [--processes 2]`. Uses
ASORA_DATABASE_URL / ASORA_REDIS_URL when set, embedded servers otherwise. Prints a table and writes
bench-results/http_floor.json.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from shared.stack import free_port, wait_http
from tests.benchmarks.harness import create_tenants, machine, print_table, require_wrk, running_stack, sale
from tests.benchmarks.scratch import write_results

FLOOR_ROUTES = ("/async", "/sync", "/orm-session", "/core-connection", "/psycopg", "/psycopg-async")
_REQUESTS = re.compile(r"Requests/sec:\s+([\d.]+)")
_PERCENTILE = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, clients: int, seconds: float, headers: dict[str, str] | None = None) -> dict[str, Any]:
    argv = ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--latency"]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    found = _REQUESTS.search(out)
    latency = {
        f"p{m.group(1)}_ms": round(float(m.group(2)) * _UNIT_MS[m.group(3)], 1) for m in _PERCENTILE.finditer(out)
    }
    errors = [line.strip() for line in out.splitlines() if "Non-2xx" in line or "Socket errors" in line]
    return {"requests_per_s": float(found.group(1)) if found else 0.0, **latency, "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=8, help="seconds per route (after 2 s of warm-up)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--processes", type=int, default=2, help="server processes, for both servers")
    args = parser.parse_args()
    require_wrk()
    rows: list[dict[str, Any]] = []
    with running_stack(api_processes=args.processes) as running:
        tenant = create_tenants(1)[0]
        auth = {"Authorization": f"Bearer {tenant.key}"}
        body = {"dry_run": True, "sales_data": [sale("floor-1")], "lots_data": []}
        job_id = httpx.post(f"{running.base}/api/v1/runs", json=body, headers=auth, timeout=30).json()["job_id"]
        port = free_port()
        floor = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "tests.benchmarks.floor_app:app",
                "--port",
                str(port),
                "--workers",
                str(args.processes),
                "--log-level",
                "warning",
                "--no-access-log",
                "--http",
                "httptools",
            ],
            env={**running.stack.env, "ASORA_FLOOR_DATABASE_URL": running.libpq_url},
            cwd=Path(__file__).resolve().parents[2],
        )
        try:
            if not wait_http(f"http://127.0.0.1:{port}/async", timeout=60):
                raise SystemExit("the floor app did not start")
            targets: list[tuple[str, str, dict[str, str]]] = [
                (f"floor {route}", f"http://127.0.0.1:{port}{route}", {}) for route in FLOOR_ROUTES
            ]
            targets.append(("asora GET /jobs/{id}", f"{running.base}/api/v1/jobs/{job_id}", auth))
            for name, url, headers in targets:
                wrk(url, args.clients, 2, headers)  # warm-up: connections, caches, prepared statements
                time.sleep(0.5)
                rows.append({"route": name, **wrk(url, args.clients, args.duration, headers)})
        finally:
            floor.terminate()
            floor.wait(20)
    base = next(r["requests_per_s"] for r in rows if r["route"] == "floor /orm-session") or 1.0
    for row in rows:
        row["ratio_to_orm_session"] = round(row["requests_per_s"] / base, 2)
    print_table(
        f"GET, {args.clients} clients, {args.processes} server processes, {args.duration:.0f} s per route",
        ["route", "req/s", "p50 ms", "p99 ms", "ratio to ORM session", "errors"],
        [
            [
                r["route"],
                round(r["requests_per_s"]),
                r.get("p50_ms"),
                r.get("p99_ms"),
                r["ratio_to_orm_session"],
                "; ".join(r["errors"]) or "0",
            ]
            for r in rows
        ],
    )
    write_results("http_floor.json", {"machine": machine(), "clients": args.clients, "rows": rows})


if __name__ == "__main__":
    main()
