"""What the benchmarks that drive the running stack share: a scratch database and a Redis database of their own,
the stack's processes, tenants with keys, wrk with the Lua scripts beside this file, the per-tenant order
checks, and the printed table.

The checks here are correctness checks (a gap in a tenant's job numbers, a job numbered before one its client
had already seen accepted); a benchmark that finds one says so and exits non-zero. Nothing here compares a
time with a threshold.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg
import redis

from shared.embedded import ServiceUrls
from shared.stack import Stack, free_port, service_env, wait_http
from tests.benchmarks.scratch import scratch_database

WRK_DIR = Path(__file__).parent / "wrk"
# Redis databases a benchmark may claim; 13 is the test suite's (it flushes it when a session starts).
REDIS_DBS = (8, 9, 10, 11, 12, 14, 15)
_CLAIM = "asora:bench:claimed-by"

# The one-lot, one-sale dry run every intake request submits (the sale id varies per request).
LOT = {
    "lot_id": "L-1",
    "sku": "WIDGET-A",
    "received_date": "2024-07-01T00:00:00Z",
    "original_quantity": "10",
    "remaining_quantity": "10",
    "unit_price": "10.00",
    "freight_cost_per_unit": "0.50",
}
SKU = "WIDGET-A"


def sale(sale_id: str) -> dict[str, str]:
    return {"sale_id": sale_id, "sku": SKU, "sale_date": "2024-07-05T10:00:00Z", "quantity_sold": "1"}


# --- the stack -------------------------------------------------------------------------------------------


class BenchStack(Stack):
    def start_api_processes(self, port: int, processes: int) -> None:
        """The API as production runs it: uvicorn with `--workers`, metrics summed over its processes."""
        self.start_api(port, processes)

    def pid(self, name: str) -> int:
        return self.processes[name].pid


@dataclass
class Running:
    base: str
    stack: BenchStack
    database_url: str  # the scratch database, as its owner (no row-level security): for checks only
    api_processes: int
    worker_processes: int
    worker_concurrency: int
    log_dir: Path

    @property
    def libpq_url(self) -> str:
        return self.database_url.replace("postgresql+psycopg://", "postgresql://", 1)

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.libpq_url, autocommit=True)


def _claim_redis_db(base_url: str) -> tuple[str, redis.Redis]:
    """An empty Redis database of our own (claimed by a key, so two benchmarks never share one)."""
    token = secrets.token_hex(8)
    server = base_url.split("?", 1)[0].rstrip("/")
    if server.count("/") > 2:  # redis://host:port/<db>
        server = server.rsplit("/", 1)[0]
    for number in REDIS_DBS:
        url = f"{server}/{number}"
        client = redis.Redis.from_url(url)
        if client.set(_CLAIM, token, nx=True):
            if client.dbsize() == 1:
                return url, client
            client.delete(_CLAIM)
        client.close()
    raise SystemExit(f"no empty Redis database among {REDIS_DBS} on {base_url}")


def _reset_caches() -> None:
    from shared.config import get_settings
    from shared.db import reset_engines

    get_settings.cache_clear()
    reset_engines()


@contextmanager
def scratch_environment() -> Iterator[str]:
    """A migrated scratch database and an empty Redis database, both set in this process's environment (the
    application's settings read them); both are dropped or flushed afterwards. Yields the database URL."""
    from shared.migrate import upgrade

    with scratch_database() as database_url:
        redis_url, claimed = _claim_redis_db(os.environ["ASORA_REDIS_URL"])
        os.environ["ASORA_REDIS_URL"] = redis_url
        _reset_caches()
        try:
            upgrade(database_url)
            yield database_url
        finally:
            claimed.flushdb()
            claimed.close()


@contextmanager
def running_stack(
    *,
    api_processes: int = 1,
    workers: int = 1,
    worker_concurrency: int = 2,
    api: bool = True,
) -> Iterator[Running]:
    """The scratch environment with the stack's processes started from it: the API (unless `api=False`),
    `workers` Celery workers and the relay. Waits until the API answers health 200 (a worker answered ping)."""
    with scratch_environment() as database_url:
        log_dir = Path(tempfile.mkdtemp(prefix="asora-bench-logs-"))
        urls = ServiceUrls(database_url, os.environ["ASORA_REDIS_URL"], False, False)
        stack = BenchStack(env=service_env(urls), log_dir=log_dir)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        ok = False
        try:
            for n in range(workers):
                stack.start_worker(name=f"worker{n}", concurrency=worker_concurrency)
            stack.start_relay()
            if api:
                stack.start_api_processes(port, api_processes)
                if not wait_http(f"{base}/api/v1/health", timeout=120):
                    raise SystemExit(f"the stack did not become healthy; logs in {log_dir}")
            else:
                _wait_for_workers(workers)
            yield Running(base, stack, database_url, api_processes, workers, worker_concurrency, log_dir)
            ok = True
        finally:
            dead = stack.dead()
            stack.stop_all()
            if dead:
                print(f"process(es) {', '.join(dead)} died during the benchmark", file=sys.stderr)
            if ok and not dead:
                shutil.rmtree(log_dir, ignore_errors=True)
            else:
                print(f"stack logs kept in {log_dir}", file=sys.stderr)


def _wait_for_workers(count: int, timeout: float = 120) -> None:
    from worker.health import ping_workers

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(ping_workers() or []) >= count:
            return
        time.sleep(0.5)
    raise SystemExit("the workers did not answer a ping")


def process_tree_rss(pid: int) -> int:
    """Resident bytes of a process and its descendants (uvicorn's and Celery's children)."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        with suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


class PeakRss(threading.Thread):
    """Samples a process tree's RSS while a phase runs; `peak` is the largest sample."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak = pid, interval, 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.peak = max(self.peak, process_tree_rss(self.pid))

    def stop(self) -> int:
        self.stopped.set()
        self.join()
        return self.peak


def wait_for_writeback(quiet_bytes: int = 64 << 20, timeout: float = 120) -> float:
    """Wait until the kernel has written back most dirty pages (/proc/meminfo `Dirty`), so that a phase does not
    pay for the previous one's writes; returns the seconds waited (0 where /proc/meminfo is absent)."""
    started = time.monotonic()
    meminfo = Path("/proc/meminfo")
    while meminfo.exists() and time.monotonic() - started < timeout:
        fields = dict(line.split(":", 1) for line in meminfo.read_text().splitlines() if ":" in line)
        if int(fields["Dirty"].split()[0]) * 1024 < quiet_bytes:
            break
        time.sleep(0.5)
    return round(time.monotonic() - started, 1)


# --- tenants ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchTenant:
    tenant_id: str
    key: str


def create_tenants(count: int, prefix: str = "bench") -> list[BenchTenant]:
    """Tenants on the enterprise plan, each with an owner key and the one item the dry runs sell, written
    through the services (their own endpoints have their own tests)."""
    from shared import db
    from shared.auth import LOCAL_ADMIN
    from shared.base import new_id
    from shared.inventory.models import Category, Item
    from shared.tenants import service as tenants

    made = []
    for n in range(count):
        tenant_id = f"{prefix}-{n:03d}"
        with db.unit_of_work() as session:
            tenants.create_tenant(
                session, tenant_id=tenant_id, name=tenant_id, plan="enterprise", role_model="standard", actor=None
            )
        with db.unit_of_work(tenant_id) as session:
            _, raw = tenants.create_key(session, tenant_id=tenant_id, role="owner", name="bench", actor=LOCAL_ADMIN)
            category = Category(id=new_id("cat"), tenant_id=tenant_id, name="general")
            session.add(category)
            session.add(Item(id=new_id("item"), tenant_id=tenant_id, sku=SKU, name=SKU, category_id=category.id))
        made.append(BenchTenant(tenant_id, raw))
    return made


# --- wrk -------------------------------------------------------------------------------------------------


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install -y wrk)")
    return path


@dataclass
class WrkResult:
    duration_s: float
    requests: int
    statuses: dict[int, int]
    socket_errors: dict[str, int]
    latency_ms: dict[str, float]
    # Per wrk thread: the job ids of its answers in the order they arrived ("" for an answer other than 202).
    answers: dict[int, list[str]] = field(default_factory=dict)

    def count(self, status: int) -> int:
        return self.statuses.get(status, 0)

    def errors(self, expected: int) -> int:
        """Answers other than `expected`, plus connect/read/write errors and timeouts."""
        return self.requests - self.count(expected) + sum(self.socket_errors.values())


class WrkRun:
    """A running `wrk` with a script from tests/benchmarks/wrk/. The script's done() hook writes its report
    (JSON) to ASORA_WRK_REPORT; scripts that count progress write it to ASORA_WRK_PROGRESS.<thread>. The
    timeout is generous so that slow answers are measured rather than dropped."""

    def __init__(
        self,
        script: str,
        base: str,
        *,
        connections: int,
        duration_s: float,
        threads: int = 1,
        env: dict[str, str] | None = None,
        timeout_s: int = 60,
    ) -> None:
        wrk = require_wrk()
        self.tmp = Path(tempfile.mkdtemp(prefix="asora-wrk-"))
        self.report = self.tmp / "report.json"
        run_env = dict(os.environ) | (env or {})
        run_env |= {
            "ASORA_WRK_REPORT": str(self.report),
            "ASORA_WRK_PROGRESS": str(self.tmp / "progress"),
            "ASORA_WRK_DIR": str(WRK_DIR),
        }
        self.threads = min(threads, connections)
        argv = [wrk, f"-t{self.threads}", f"-c{connections}", f"-d{max(1, round(duration_s))}s"]
        argv += ["--timeout", f"{timeout_s}s", "-s", str(WRK_DIR / script), base]
        self.proc = subprocess.Popen(argv, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def progress(self) -> int:
        """Answers counted so far by the script (in steps of its progress interval)."""
        total = 0
        for n in range(1, self.threads + 1):
            with suppress(FileNotFoundError, ValueError):
                total += int((self.tmp / f"progress.{n}").read_text() or 0)
        return total

    def interrupt(self) -> None:
        """Stop now (wrk otherwise runs for its whole duration); its done() hook still reports."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def wait(self) -> WrkResult:
        stdout, stderr = self.proc.communicate()
        try:
            if self.proc.returncode != 0 or not self.report.exists():
                raise SystemExit(f"wrk failed ({self.proc.returncode}):\n{stdout}\n{stderr}")
            data = json.loads(self.report.read_text())
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return WrkResult(
            duration_s=data["duration_us"] / 1e6,
            requests=int(data["requests"]),
            statuses={int(k): int(v) for k, v in (data["statuses"] or {}).items()},
            socket_errors={k: int(v) for k, v in data["errors"].items() if k != "status"},
            latency_ms={k: round(v / 1000, 1) for k, v in data["latency_us"].items()},
            answers={int(t["id"]): list(t.get("answers", [])) for t in data["threads"]},
        )


def run_wrk(script: str, base: str, **kwargs: Any) -> WrkResult:
    """Run `wrk` for its duration and return its report (see `WrkRun`)."""
    return WrkRun(script, base, **kwargs).wait()


def write_lines(path: Path, lines: Sequence[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


# --- order checks ----------------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def check_gapless(conn: psycopg.Connection[Any]) -> Check:
    """Every tenant's jobs are numbered 1..n with no gap, and its counter stands at n."""
    rows = conn.execute(
        "SELECT c.tenant_id, c.job_seq, count(j.id), coalesce(min(j.seq), 0), coalesce(max(j.seq), 0)"
        " FROM tenant_counters c LEFT JOIN jobs j ON j.tenant_id = c.tenant_id GROUP BY c.tenant_id, c.job_seq"
    ).fetchall()
    bad = [r for r in rows if r[2] and (r[3] != 1 or r[4] != r[2] or r[1] != r[2])]
    total = sum(r[2] for r in rows)
    if bad:
        shown = "; ".join(f"{t}: counter {c}, {n} jobs, seq {lo}..{hi}" for t, c, n, lo, hi in bad[:5])
        return Check("jobs.seq gapless 1..n per tenant", False, f"{len(bad)} tenant(s) with a gap: {shown}")
    tenants = sum(1 for r in rows if r[2])
    return Check("jobs.seq gapless 1..n per tenant", True, f"{total} jobs over {tenants} tenants")


def settle(conn: psycopg.Connection[Any], timeout: float = 30) -> None:
    """Wait for requests still in flight when wrk stopped (the API finishes and commits them) to land."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        row = conn.execute("SELECT count(*) FROM jobs").fetchone()
        count = row[0] if row else 0
        if count == last:
            return
        last = count
        time.sleep(1.0)


@dataclass(frozen=True)
class AcceptedJob:
    """A job of one wrk run as the database holds it, with what its sale id says about the request."""

    job_id: str
    tenant_id: str
    seq: int
    thread: int  # the wrk thread that sent it
    seen: int  # how many answers that thread had received when it wrote the request


def order_violations(jobs: Sequence[AcceptedJob], answers: dict[int, list[str]]) -> tuple[int, list[str]]:
    """Jobs numbered at or below a job of the same tenant whose 202 their thread had already received when it
    wrote their request. `answers` holds each thread's answered job ids in arrival order ("" for an answer other
    than 202). Returns the number of (job, earlier-accepted job) cases checked and the violations."""
    by_id = {job.job_id: job for job in jobs}
    sent_after: dict[int, dict[int, list[AcceptedJob]]] = defaultdict(lambda: defaultdict(list))
    for job in jobs:
        sent_after[job.thread][job.seen].append(job)
    violations: list[str] = []
    cases = 0
    for thread, answered in answers.items():
        waiting = sent_after.get(thread, {})
        highest: dict[str, int] = {}  # per tenant, the highest seq among the answers received so far
        for seen in range(len(answered) + 1):
            if seen and (earlier := by_id.get(answered[seen - 1])) is not None:
                highest[earlier.tenant_id] = max(highest.get(earlier.tenant_id, 0), earlier.seq)
            for job in waiting.get(seen, []):
                if job.tenant_id in highest:
                    cases += 1
                    if job.seq <= highest[job.tenant_id]:
                        violations.append(
                            f"{job.job_id} ({job.tenant_id} seq {job.seq}) after seq {highest[job.tenant_id]}"
                        )
    return cases, violations


def check_acceptance_order(conn: psycopg.Connection[Any], tag: str, result: WrkResult) -> list[Check]:
    """Within one wrk thread, a request was written only after the answers it counted had arrived (the script
    puts that count in the sale id: `<tag>-<thread>-<n>-<answers seen>`), and the API answers 202 only after
    its commit. So every job its client saw accepted before sending another request of the same tenant must
    have the lower seq. Also: every job answered 202 exists."""
    settle(conn)
    rows = conn.execute(
        "SELECT j.id, j.tenant_id, j.seq, convert_from(b.content, 'UTF8') FROM jobs j"
        " JOIN job_blobs b ON b.job_id = j.id AND b.name = 'sales'"
        " WHERE convert_from(b.content, 'UTF8') LIKE %s",
        (f'%"sale_id":"{tag}-%',),
    ).fetchall()
    jobs = []
    for job_id, tenant_id, seq, content in rows:
        _, thread, _, seen = json.loads(content)[0]["sale_id"].rsplit("-", 3)
        jobs.append(AcceptedJob(job_id, tenant_id, seq, int(thread), int(seen)))
    answered = {job_id for answers in result.answers.values() for job_id in answers if job_id}
    stored = {job.job_id for job in jobs}
    missing = answered - stored
    cases, violations = order_violations(jobs, result.answers)
    return [
        Check(
            "every 202 job is in the database",
            not missing,
            f"{len(answered)} answered, {len(stored - answered)} committed without an answer seen (in flight when "
            "wrk stopped)"
            if not missing
            else f"{len(missing)} answered 202 but absent: {sorted(missing)[:5]}",
        ),
        Check(
            "seq follows acceptance order",
            not violations,
            f"{len(jobs)} jobs; checked against the newest earlier-accepted job of the same tenant ({cases} cases)"
            if not violations
            else f"{len(violations)} job(s) numbered before a job accepted earlier: {violations[:5]}",
        ),
    ]


def created_at_inversions(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """Consecutive jobs of a tenant whose `created_at` runs backwards. Not an error: `created_at` is the
    transaction's start (now()), and the counter serializes transactions later, at the UPDATE."""
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE created_at < prev), count(prev) FROM ("
        " SELECT created_at, lag(created_at) OVER (PARTITION BY tenant_id ORDER BY seq) AS prev FROM jobs) s"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def report_checks(checks: Sequence[Check]) -> bool:
    for check in checks:
        mark = "ok  " if check.ok else "FAIL"
        print(f"  [{mark}] {check.name}: {check.detail}")
    failed = [c for c in checks if not c.ok]
    if failed:
        banner = "!" * 100
        print(f"{banner}\nCORRECTNESS CHECK FAILED: {', '.join(c.name for c in failed)}\n{banner}", file=sys.stderr)
    return not failed


# --- output ----------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    print(f"\n{title}")
    print("  ".join(h.rjust(w) for h, w in zip(cells[0], widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0], "load_average": os.getloadavg()}
