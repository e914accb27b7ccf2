"""Liveness of every dependency, and Prometheus metrics."""

from __future__ import annotations

import time
from typing import Any

import redis
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from shared.config import get_settings
from shared.db import get_engine
from shared.migrate import is_at_head

router = APIRouter()
_workers_cache: dict[str, Any] = {"at": 0.0, "ok": False}


def _check_database() -> bool:
    with get_engine().connect() as conn:
        conn.execute(text("SELECT 1"))
    return True


def _check_redis() -> bool:
    return bool(redis.Redis.from_url(get_settings().redis_url or "", socket_timeout=1).ping())


def _check_broker() -> bool:
    from worker.celery_app import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=1)
    return True


def _check_workers() -> bool:
    if time.monotonic() - _workers_cache["at"] < 2:
        return bool(_workers_cache["ok"])
    from worker.celery_app import app

    replies = app.control.inspect(timeout=1.0).ping() or {}
    _workers_cache.update(at=time.monotonic(), ok=bool(replies))
    return bool(replies)


def _check_migrations() -> bool:
    return is_at_head(get_engine())


CHECKS = {
    "database": _check_database,
    "redis": _check_redis,
    "broker": _check_broker,
    "workers": _check_workers,
    "migrations": _check_migrations,
}


def run_checks() -> dict[str, str]:
    results = {}
    for name, check in CHECKS.items():
        try:
            results[name] = "ok" if check() else "down"
        except Exception:
            results[name] = "down"
    return results


@router.get("/health", tags=["ops"])
@router.get("/api/v1/health", tags=["ops"])
def health() -> JSONResponse:
    checks = run_checks()
    healthy = all(v == "ok" for v in checks.values())
    return JSONResponse(
        status_code=200 if healthy else 503, content={"status": "ok" if healthy else "degraded", "checks": checks}
    )


@router.get("/metrics", tags=["ops"])
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
