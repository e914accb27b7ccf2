"""Starting and stopping the whole stack as child processes: API, worker(s), relay and Flower.

Used by `asora up`, `asora demo` and the tests. Nothing here imports FastAPI or Celery: the processes are
started from the virtualenv's own executables with the environment they need.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from shared.embedded import ServiceUrls
from shared.jobs.kinds import Queue
from shared.metrics import MULTIPROC_ENV
from shared.ports import free_port
from shared.registry import QUEUES

# free_port lives in shared/ports.py; it stays importable from here, where the tests and tools look for it.
__all__ = ["BIN", "Stack", "StartupFailed", "StartupTimedOut", "free_port", "service_env", "wait_http"]

BIN = Path(sys.executable).parent
ALL_QUEUES = ",".join(QUEUES)
# Dispatches wait on receivers: they get workers of their own, so a stalled receiver never takes a slot that
# receipts, counts, runs and exports need. (name, queues, concurrency); the deploy manifests do the same.
WORKER_POOLS: tuple[tuple[str, str, int], ...] = (
    ("worker", ",".join(q for q in QUEUES if q != Queue.DISPATCH), 2),
    ("worker-dispatch", Queue.DISPATCH, 2),
)

# Flower's task list: the kind is the task's name (`asora.jobs.cogs_run`), the job id its uuid, the tenant
# and stream are in its kwargs; a failed job's code and reason are its exception.
FLOWER_TASK_COLUMNS = "name,uuid,state,kwargs,exception,received,started,runtime,worker"
FLOWER_STATE_SAVE_MS = 10_000


def api_processes() -> int:
    """API processes for this machine: one per core (the work is PostgreSQL's and Python's, in equal parts),
    at least two so that one busy process never stalls the API, at most eight."""
    return max(2, min(os.cpu_count() or 1, 8))


class StartupFailed(Exception):
    """A child process exited before the stack became healthy."""

    def __init__(self, name: str, returncode: int | None, log: Path) -> None:
        super().__init__(f"{name} exited with code {returncode} during start-up; its log is {log}")
        self.name, self.returncode, self.log = name, returncode, log


class StartupTimedOut(Exception):
    """Every child is alive but the health URL never answered 200; `last` is its last answer, if any."""

    def __init__(self, url: str, timeout: float, last: dict[str, Any] | None) -> None:
        super().__init__(f"{url} did not answer 200 within {timeout:.0f} s")
        self.url, self.timeout, self.last = url, timeout, last


def service_env(urls: ServiceUrls, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"ASORA_DATABASE_URL": urls.database_url, "ASORA_REDIS_URL": urls.redis_url})
    env.update(extra or {})
    return env


@dataclass
class Stack:
    env: dict[str, str]
    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path(name).open("ab")
        # Log files are read by tools: JSON lines (shared/logs.py), unless ASORA_LOG_FORMAT says otherwise.
        child_env = {"ASORA_LOG_FORMAT": "json", **self.env, **(env or {})}
        proc = subprocess.Popen(argv, env=child_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes[name] = proc
        return proc

    def start_api(self, port: int, processes: int | None = None) -> None:
        """The API: `processes` uvicorn workers behind one port (default: one per core, see `api_processes`).
        Their metrics meet in a directory emptied first (shared/metrics.py), so one scrape sees them all."""
        metrics_dir = self.log_dir / "api-metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        self._spawn(
            "api",
            [
                str(BIN / "uvicorn"),
                "api.main:app",
                "--http",
                "api.server:HttpTools",  # parser refusals in the envelope too
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(processes or api_processes()),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env={MULTIPROC_ENV: str(metrics_dir)},
        )

    def start_workers(self) -> None:
        """The standard fleet: one worker per pool of `WORKER_POOLS` (books apart from dispatches)."""
        for name, queues, concurrency in WORKER_POOLS:
            self.start_worker(name=name, queues=queues, concurrency=concurrency)

    def start_worker(
        self, name: str = "worker", queues: str = ALL_QUEUES, concurrency: int = 2
    ) -> subprocess.Popen[bytes]:
        return self._spawn(
            name,
            [
                str(BIN / "celery"),
                "-A",
                "worker.celery_app",
                "--quiet",  # no banner: the log holds JSON lines only (the worker logs "ready" itself)
                "worker",
                "-Q",
                queues,
                "-n",
                f"{name}@%h",
                "--concurrency",
                str(concurrency),
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
            ],
        )

    def start_relay(self) -> None:
        self._spawn("relay", [sys.executable, "-m", "worker.relay"])

    def start_flower(self, port: int, state_file: Path | None = None) -> None:
        """Flower on 127.0.0.1 (its login comes from FLOWER_BASIC_AUTH in the environment). The task list shows
        each task's kind (its name), job id (its uuid) and tenant (its kwargs). With `state_file`, Flower keeps
        its task history there (saved every FLOWER_STATE_SAVE_MS and on shutdown), so a restart keeps it."""
        argv = [
            str(BIN / "celery"),
            "-A",
            "worker.celery_app",
            "flower",
            f"--port={port}",
            "--address=127.0.0.1",
            f"--tasks_columns={FLOWER_TASK_COLUMNS}",
        ]
        if state_file is not None:
            argv += ["--persistent=True", f"--db={state_file}", f"--state_save_interval={FLOWER_STATE_SAVE_MS}"]
        self._spawn("flower", argv)

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        proc = self.processes.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def stop_all(self) -> None:
        for name in list(reversed(self.processes)):
            self.stop(name)

    def dead(self) -> list[str]:
        return [name for name, proc in self.processes.items() if proc.poll() is not None]

    def wait_healthy(self, url: str, timeout: float) -> None:
        """Wait until `url` answers 200, watching the children meanwhile: one that exits (a port taken after
        all, a configuration it refuses) raises StartupFailed at once instead of after the whole timeout."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            for name in self.dead():
                raise StartupFailed(name, self.processes[name].returncode, self.log_path(name))
            try:
                response = httpx.get(url, timeout=2)
                if response.status_code == 200:
                    return
                last = response.json()
            except (httpx.HTTPError, ValueError):  # not up yet, or not answering JSON yet
                pass
            time.sleep(0.2)
        raise StartupTimedOut(url, timeout, last)


def wait_http(url: str, timeout: float = 60.0, ok_statuses: tuple[int, ...] = (200,)) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code in ok_statuses:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False
