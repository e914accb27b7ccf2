"""Real processes for the fault scenarios: an API and a relay per module, workers per scenario (killed,
stopped, terminated at will), tenants with a backlog, and a Redis server of the suite's own."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psutil
import redis

from shared.embedded import ServiceUrls
from shared.jobs.outbox import Wakeup
from shared.stack import Stack, free_port, service_env, wait_http
from tests.faults.invariants import PROBE_SKU
from tests.support import create_tenant_direct, lot, query, sale, seed_items, submit_run_direct, wait_for

# Short bounds so that every fault is over within seconds: lock waits, idle transactions (a frozen holder's
# fence), the reaper's interval, a lease and the stale threshold (tests/conftest.py sets the last two).
FAULT_ENV = {
    "ASORA_DB_LOCK_TIMEOUT_MS": "2000",
    "ASORA_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS": "4000",
    "ASORA_RELAY_REAP_INTERVAL_SECONDS": "1",
}
SKUS = ["F-1", "F-2", PROBE_SKU]
FULL = os.environ.get("ASORA_FAULTS_FULL") == "1"  # `make soak --full`: the scenarios at full size


def size(quick: int, full: int) -> int:
    return full if FULL else quick


@dataclass
class Faults:
    """One module's processes. Workers are named; each may have settings of its own."""

    service_urls: dict[str, str]
    log_dir: Path
    redis_url: str | None = None
    stacks: dict[str, Stack] = field(default_factory=dict)
    base: str = ""

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        urls = ServiceUrls(
            self.service_urls["database_url"], self.redis_url or self.service_urls["redis_url"], False, False
        )
        own = {k: v for k, v in os.environ.items() if k.startswith("ASORA_")}
        return service_env(urls, own | FAULT_ENV | (extra or {}))

    def env_stack(self, extra: dict[str, str] | None = None) -> Stack:
        return Stack(env=self.env(extra), log_dir=self.log_dir)

    def _stack(self, name: str, extra: dict[str, str] | None = None) -> Stack:
        self.stop(name)
        stack = self.env_stack(extra)
        self.stacks[name] = stack
        return stack

    def start_relay(self, extra: dict[str, str] | None = None) -> None:
        self._stack("relay", extra).start_relay()

    def start_api(self) -> str:
        port = free_port()
        self._stack("api").start_api(port, processes=2)
        self.base = f"http://127.0.0.1:{port}"
        if not wait_http(f"{self.base}/api/v1/health", timeout=90, ok_statuses=(200, 503)):
            raise RuntimeError(f"the API did not start; logs in {self.log_dir}")
        return self.base

    def start_worker(self, name: str, extra: dict[str, str] | None = None, concurrency: int = 2) -> None:
        self._stack(name, extra).start_worker(name=name, concurrency=concurrency)

    def process(self, name: str) -> subprocess.Popen[bytes]:
        return self.stacks[name].processes[name]

    def send(self, name: str, sig: int, *, group: bool = True) -> None:
        proc = self.stacks[name].processes[name]
        if group:
            os.killpg(proc.pid, sig)
        else:
            os.kill(proc.pid, sig)

    def children(self, name: str) -> list[psutil.Process]:
        try:
            return psutil.Process(self.stacks[name].processes[name].pid).children()
        except psutil.NoSuchProcess:
            return []

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        stack = self.stacks.pop(name, None)
        if stack is not None:
            proc = stack.processes.get(name)
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGCONT)  # a paused process cannot act on SIGTERM
            stack.stop_all() if sig == signal.SIGTERM else stack.stop(name, sig=sig)

    def stop_workers(self) -> None:
        for name in [n for n in self.stacks if n not in ("api", "relay")]:
            self.stop(name, signal.SIGKILL)

    def stop_all(self) -> None:
        self.stop_workers()
        for name in ("relay", "api"):
            self.stop(name)

    def publish(self, wakeups: list[Wakeup]) -> None:
        """Send wake-ups to this module's broker, as `worker.publisher` does (from a process of its own, whose
        Celery app is configured for that broker)."""
        lines = [
            "import json, sys",
            "from shared.jobs.kinds import JobKind",
            "from shared.jobs.outbox import Wakeup",
            "from worker.publisher import publish",
            "publish([Wakeup(j, t, JobKind(k), s) for j, t, k, s in json.load(sys.stdin)])",
        ]
        payload = json.dumps([[w.job_id, w.tenant_id, str(w.kind), w.stream] for w in wakeups])
        subprocess.run(
            [sys.executable, "-c", "\n".join(lines)], input=payload.encode(), env=self.env(), check=True, timeout=120
        )

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


# --- tenants and work ------------------------------------------------------------------------------------


def tenant(prefix: str = "flt") -> str:
    tenant_id = create_tenant_direct(prefix)
    seed_items(tenant_id, SKUS)
    return tenant_id


def backlog(tenant_id: str, n: int, *, start: int = 0, sku: str = "F-1") -> list[str]:
    """`n` runs of one lot and one sale each, recorded as the API records them and left for the relay to
    deliver; dates rise with the run, so none is backdated. Returns the job ids in acceptance order."""
    jobs = []
    for i in range(start, start + n):
        day = date(2024, 1, 1) + timedelta(days=2 * i)
        sales = [sale(f"S{i}", sku, str(day + timedelta(days=1)), "3")]
        lots = [lot(f"L{i}", sku, str(day), "10", str(2 + i % 3))]
        jobs.append(submit_run_direct(tenant_id, sales, lots)[1])
    return jobs


def status(job_id: str) -> tuple[str, int, int, str | None]:
    row = query("SELECT status, attempts, lost_attempts, worker FROM jobs WHERE id = :j", {"j": job_id})[0]
    return row[0], int(row[1]), int(row[2]), row[3]


def wait_running(job_ids: list[str], timeout: float = 60, worker: str | None = None) -> str:
    """Wait for one of the jobs to be running (on `worker`, if named); returns its id."""

    def running() -> str | None:
        rows = query(
            "SELECT id, worker FROM jobs WHERE id = ANY(:j) AND status = 'running' ORDER BY seq", {"j": job_ids}
        )
        for row in rows:
            if worker is None or (row.worker or "").startswith(f"{worker}@"):
                return str(row.id)
        return None

    found: str = wait_for(running, timeout, f"none of {len(job_ids)} jobs started")
    return found


def completed(job_ids: list[str]) -> int:
    return int(query("SELECT count(*) FROM jobs WHERE id = ANY(:j) AND status = 'completed'", {"j": job_ids})[0][0])


def fence_holders(service_urls: dict[str, str], also: str = "") -> list[tuple[int, str]]:
    """(backend pid, application_name) of every worker connection holding a stream's fence (an advisory lock)
    in this test database (and meeting the SQL condition `also`, on `pg_stat_activity a`)."""
    from tests.support import owner_connection

    with owner_connection(service_urls) as conn:
        rows = conn.execute(
            """SELECT a.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
               WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()
                 AND a.application_name LIKE 'asora:celery:%' """
            + also
        ).fetchall()
    return [(int(r[0]), str(r[1])) for r in rows]


def copying_holder(service_urls: dict[str, str]) -> int | None:
    """The backend pid of a worker connection that holds a fence and is in the middle of a COPY, if any."""
    copying = fence_holders(service_urls, "AND a.state = 'active' AND a.query ILIKE 'COPY%'")
    return copying[0][0] if copying else None


def large_run(tenant_id: str, sales: int, *, sku: str = "F-2") -> str:
    """One run of `sales` one-unit sales out of one lot (the COPY path: more than 500 rows); returns its job."""
    rows = [sale(f"B{i}", sku, "2023-06-02", "1") for i in range(sales)]
    return submit_run_direct(tenant_id, rows, [lot("BIG", sku, "2023-06-01", str(sales), "2")])[1]


def terminate_backend(service_urls: dict[str, str], pid: int) -> bool:
    from tests.support import owner_connection

    with owner_connection(service_urls) as conn:
        return bool(conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0])


def kill_fence_holder(faults: Faults, name: str, timeout: float = 30) -> int:
    """SIGKILL the pool child of worker `name` that holds a fence now (found by its connection's
    application_name, `asora:celery:<pid>`); returns its pid."""
    children = {p.pid for p in faults.children(name)}

    def holder() -> int | None:
        for _, app in fence_holders(faults.service_urls):
            pid = int(app.rsplit(":", 1)[1])
            if pid in children:
                return pid
        return None

    pid: int = wait_for(holder, timeout, f"no child of {name} held a fence")
    os.kill(pid, signal.SIGKILL)
    return pid


# --- a Redis server of the suite's own (scenario 6 restarts and flushes it) ----------------------------------


@dataclass
class OwnRedis:
    data_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is needed for the Redis fault scenario")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        log = (self.data_dir / "redis.log").open("ab")
        self.proc = subprocess.Popen(argv, cwd=self.data_dir, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_for(up, 30, "own redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self) -> None:
        self.kill()
        time.sleep(0.2)
        self.start()

    def flushall(self) -> None:
        redis.Redis.from_url(self.url).flushall()


def ledger_books(tenant_id: str) -> list[Any]:
    """What a tenant's books say, without ids that differ between tenants: each event's type, SKU, lot,
    quantity, cost and amount in seq order, then each job's kind and outcome in seq order."""
    events = query(
        """SELECT seq, event_type, sku, lot_id, quantity, unit_cost, amount FROM ledger_events
           WHERE tenant_id = :t ORDER BY seq""",
        {"t": tenant_id},
    )
    jobs = query(
        "SELECT seq, kind, status, error->>'reason' FROM jobs WHERE tenant_id = :t ORDER BY seq", {"t": tenant_id}
    )
    return [tuple(e) for e in events] + [tuple(j) for j in jobs]
