"""Starting and stopping the whole stack as child processes: API, worker(s), relay and Flower.

Used by `asora up`, `asora demo` and the tests. Nothing here imports FastAPI or Celery: the processes are
started from the virtualenv's own executables with the environment they need.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shared.embedded import ServiceUrls

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes[name] = proc
        return proc

    def start_api(self, port: int) -> None:
        self._spawn(
            "api",
            [
                str(BIN / "uvicorn"),
                "api.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
        )

    def start_worker(
        self, name: str = "worker", queues: str = "runs,inventory,exports,dispatch", concurrency: int = 2
    ) -> subprocess.Popen[bytes]:
        return self._spawn(
            name,
            [
                str(BIN / "celery"),
                "-A",
                "worker.celery_app",
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

    def start_flower(self, port: int) -> None:
        argv = [str(BIN / "celery"), "-A", "worker.celery_app", "flower", f"--port={port}", "--address=127.0.0.1"]
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
