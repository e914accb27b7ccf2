"""What one accepted `POST /api/v1/runs` costs the API process: CPU (by thread), SQL statements and commits.

The application (`api.main:app`, with its lifespan: publisher, logging, metrics in multiprocess mode) is driven
in this process over ASGI, without an HTTP server or a socket: `--clients` concurrent clients each send the
same one-lot, one-sale JSON dry run as `bench_intake`'s wrk script (a new sale id each time), optionally with an
`Idempotency-Key`. What it reports per accepted request is what the API's own code costs, which is far less
noisy on a shared machine than throughput: this process's CPU split by thread (the event loop, the threadpool
and commit lanes, the publisher, the log writer), the SQL statements SQLAlchemy sent (by shape) and the
commits. uvicorn's HTTP parsing and socket I/O come on top (`bench_intake` measures the whole).

Run: `python -m tests.benchmarks.bench_intake_cost [--requests 2000] [--clients 10] [--idempotency-keys]`.
Prints a table and writes bench-results/intake_cost.json. Uses ASORA_DATABASE_URL / ASORA_REDIS_URL when set,
embedded servers otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

import psutil
from sqlalchemy import Engine, event

from tests.benchmarks.harness import LOT, create_tenants, machine, print_table, sale, scratch_environment
from tests.benchmarks.scratch import write_results

Message = dict[str, Any]


def _shape(statement: str) -> str:
    return " ".join(statement.split())[:90]


def _thread_group(name: str) -> str:
    if name == "MainThread":
        return "event loop"
    if name.startswith("AnyIO worker thread"):
        return "threadpool and commit lanes"
    return name.rstrip("0123456789-_ ") or name


def _thread_cpu() -> dict[str, float]:
    """CPU seconds so far by thread group (native ids mapped to Python thread names)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for thread in psutil.Process().threads():
        group = _thread_group(names.get(thread.id, "other"))
        out[group] = out.get(group, 0.0) + thread.user_time + thread.system_time
    return out


class Driver:
    """The ASGI app with its lifespan, called directly (one request = one `app(scope, receive, send)`)."""

    def __init__(self, app: Callable[..., Coroutine[Any, Any, None]], key: str, idempotency: bool) -> None:
        self.app, self.key, self.idempotency = app, key.encode(), idempotency
        self.statuses: Counter[int] = Counter()
        self._lifespan: asyncio.Queue[Message] = asyncio.Queue()
        self._started, self._stopped = asyncio.Event(), asyncio.Event()

    async def _lifespan_send(self, message: Message) -> None:
        if message["type"].endswith(".failed"):
            raise SystemExit(f"the app's lifespan failed: {message}")
        (self._started if message["type"] == "lifespan.startup.complete" else self._stopped).set()

    async def start(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._task: asyncio.Task[None] = asyncio.create_task(self.app(scope, self._lifespan.get, self._lifespan_send))
        await self._lifespan.put({"type": "lifespan.startup"})
        await self._started.wait()

    async def stop(self) -> None:
        await self._lifespan.put({"type": "lifespan.shutdown"})
        await self._stopped.wait()
        await self._task

    async def post_run(self, n: int) -> None:
        body = json.dumps({"dry_run": True, "sales_data": [sale(f"s-{n}")], "lots_data": [LOT]}).encode()
        headers = [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"authorization", b"Bearer " + self.key),
            (b"content-length", str(len(body)).encode()),
        ]
        if self.idempotency:
            headers.append((b"idempotency-key", f"bench-{n}".encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/api/v1/runs",
            "raw_path": b"/api/v1/runs",
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        answered = asyncio.Event()
        status = 0
        body_sent = False

        async def receive() -> Message:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await answered.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                answered.set()

        await self.app(scope, receive, send)
        self.statuses[status] += 1

    async def load(self, first: int, requests: int, clients: int) -> None:
        async def client(start: int) -> None:
            for n in range(start, first + requests, clients):
                await self.post_run(n)

        await asyncio.gather(*(client(first + c) for c in range(clients)))


def measure(requests: int, clients: int, warmup: int, idempotency: bool) -> dict[str, Any]:
    import uvloop

    [tenant] = create_tenants(1, prefix="cost")
    from worker import health

    # No worker runs here, and the API's worker-ping thread would outlive the benchmark's Redis database (its
    # reply queue's binding reappears after the flush and leaves the database looking claimed).
    health.watch_workers = lambda: None
    from api.main import app

    statements: Counter[str] = Counter()
    commits = 0

    def counted(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements[_shape(statement)] += 1

    def committed(_conn: Any) -> None:
        nonlocal commits
        commits += 1

    async def run() -> dict[str, Any]:
        nonlocal commits
        driver = Driver(app, tenant.key, idempotency)
        await driver.start()
        try:
            await driver.load(0, warmup, clients)
            event.listen(Engine, "before_cursor_execute", counted)
            event.listen(Engine, "commit", committed)
            driver.statuses.clear()
            await asyncio.sleep(0.5)  # the warm-up's wake-ups are published
            cpu_before, process_before, wall = _thread_cpu(), time.process_time(), time.perf_counter()
            await driver.load(warmup, requests, clients)
            wall = time.perf_counter() - wall
            await asyncio.sleep(0.5)  # and this load's, so the publisher's CPU is all counted
            process_cpu = time.process_time() - process_before
            cpu_after = _thread_cpu()
        finally:
            event.remove(Engine, "before_cursor_execute", counted)
            event.remove(Engine, "commit", committed)
            await driver.stop()
        accepted = driver.statuses[202]
        if accepted != requests:
            raise SystemExit(f"NOT EVERY REQUEST WAS ACCEPTED: {dict(driver.statuses)}")
        by_thread = {
            group: round(1000 * (cpu_after.get(group, 0) - cpu_before.get(group, 0)) / accepted, 3)
            for group in sorted(cpu_after)
            if cpu_after.get(group, 0) - cpu_before.get(group, 0) > 0.0005 * accepted
        }
        return {
            "accepted": accepted,
            "wall_s": round(wall, 2),
            "accepted_per_s": round(accepted / wall, 1),
            "cpu_ms_per_accept": round(1000 * process_cpu / accepted, 3),
            "cpu_ms_per_accept_by_thread": by_thread,
            "statements_per_accept": round(sum(statements.values()) / accepted, 2),
            "commits_per_accept": round(commits / accepted, 2),
            "statements": {shape: round(n / accepted, 2) for shape, n in statements.most_common()},
        }

    return uvloop.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--idempotency-keys", action="store_true", help="every request with a new Idempotency-Key")
    args = parser.parse_args()
    os.environ.setdefault("ASORA_LOG_FORMAT", "json")  # as the served API writes its lines
    figures: dict[str, Any] = {"machine": machine(), "clients": args.clients}
    with tempfile.TemporaryDirectory() as metrics_dir, open(os.devnull, "w") as devnull:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # as `asora up` and the deploy manifests run it
        import contextlib

        with scratch_environment(), contextlib.redirect_stderr(devnull):  # the API's log lines
            figures |= measure(args.requests, args.clients, args.warmup, args.idempotency_keys)
    rows = [["CPU per accept (ms), whole process", f"{figures['cpu_ms_per_accept']:.2f}"]]
    rows += [[f"  {group}", f"{ms:.2f}"] for group, ms in figures["cpu_ms_per_accept_by_thread"].items()]
    rows += [
        ["SQL statements per accept", f"{figures['statements_per_accept']:.2f}"],
        ["commits per accept", f"{figures['commits_per_accept']:.2f}"],
        ["accepted/s in process (not the HTTP figure)", f"{figures['accepted_per_s']:.1f}"],
    ]
    print_table(
        f"POST /api/v1/runs in process, {args.requests} requests, {args.clients} clients"
        + (", each with an Idempotency-Key" if args.idempotency_keys else "")
        + f", load average {figures['machine']['load_average'][0]:.1f}",
        ["per accepted request", "value"],
        rows,
    )
    print("\nstatements per accept, by shape:")
    for shape, n in figures["statements"].items():
        print(f"  {n:5.2f}  {shape}")
    print(f"wrote {write_results('intake_cost.json', figures)}")


if __name__ == "__main__":
    main()
