"""The Celery side of the health probes: is the broker reachable, and which workers answer a ping."""

from __future__ import annotations

import time

from worker.celery_app import app

_pings: dict[str, object] = {"at": 0.0, "names": None}
PING_CACHE_SECONDS = 2.0


def broker_reachable() -> bool:
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=1)
    return True


def ping_workers(timeout: float = 1.0) -> list[str] | None:
    """Names of the workers answering a broadcast ping (cached briefly: a ping waits for its timeout)."""
    if time.monotonic() - float(_pings["at"]) < PING_CACHE_SECONDS:  # type: ignore[arg-type]
        return _pings["names"]  # type: ignore[return-value]
    try:
        replies = app.control.inspect(timeout=timeout).ping() or {}
    except Exception:
        return None
    names = sorted(replies)
    _pings.update(at=time.monotonic(), names=names)
    return names
