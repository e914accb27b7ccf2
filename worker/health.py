"""The Celery side of the health probes: is the broker reachable, and which workers answer a ping.

A broadcast ping waits for its whole timeout, so a process that answers health checks (the API) keeps the
answer fresh from a thread of its own (`watch_workers`) and `GET /health` reads it without waiting."""

from __future__ import annotations

import threading
import time

from worker.celery_app import app

PING_EVERY_SECONDS = 2.0
FRESH_FOR_SECONDS = 6.0
_state: dict[str, object] = {"at": 0.0, "names": None}
_lock = threading.Lock()
_watching = threading.Event()


def broker_reachable() -> bool:
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=1)
    return True


def _ping(timeout: float) -> list[str] | None:
    try:
        replies = app.control.inspect(timeout=timeout).ping() or {}
    except Exception:
        return None
    names = sorted(replies)
    with _lock:
        _state.update(at=time.monotonic(), names=names)
    return names


def ping_workers(timeout: float = 1.0) -> list[str] | None:
    """Names of the workers answering a broadcast ping: the watcher's answer while it is fresh, else a ping."""
    with _lock:
        fresh = time.monotonic() - float(_state["at"]) < FRESH_FOR_SECONDS  # type: ignore[arg-type]
        names = _state["names"]
    if fresh:
        return names  # type: ignore[return-value]
    return _ping(timeout)


def watch_workers() -> None:
    """Keep the ping answer fresh from a daemon thread (once per process)."""
    if _watching.is_set():
        return
    _watching.set()

    def run() -> None:
        while True:
            _ping(1.0)
            time.sleep(PING_EVERY_SECONDS)

    threading.Thread(target=run, name="asora-worker-ping", daemon=True).start()
