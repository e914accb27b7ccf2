"""Liveness of Asora's dependencies: the one set of probes behind `GET /health`, `asora ops health` and the
stack's start-up wait. Each probe returns a `Check` and never raises: a dependency that cannot be reached is
the finding itself. Probes that need Celery (the broker, the workers) live in `worker/health.py` and are
passed in, so nothing here imports Celery."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import redis
from sqlalchemy import Engine, text

from shared.migrate import head_revision, is_at_head

SEVERITY = {"ok": 0, "warning": 1, "alert": 2, "down": 2}


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warning | alert | down
    value: Any = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def guard(name: str, probe: Callable[[], Check]) -> Check:
    try:
        return probe()
    except Exception as exc:  # any failure to reach a dependency is the finding itself
        return Check(name, "down", None, f"{exc.__class__.__name__}: {str(exc)[:200]}")


def check_database(engine: Engine) -> Check:
    def probe() -> Check:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return Check("database", "ok", None, "SELECT 1 answered")

    return guard("database", probe)


def check_migrations(engine: Engine) -> Check:
    def probe() -> Check:
        at_head = is_at_head(engine)
        return Check("migrations", "ok" if at_head else "down", None, f"head is {head_revision()}")

    return guard("migrations", probe)


def check_redis(redis_url: str, timeout: float = 1.0) -> Check:
    def probe() -> Check:
        client = redis.Redis.from_url(redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
        ok = bool(client.ping())
        return Check("redis", "ok" if ok else "down", None, "PING answered" if ok else "no PONG")

    return guard("redis", probe)


def check_workers(ping: Callable[[], list[str] | None], api: Check | None = None) -> Check:
    """Workers answering a broadcast ping; when they cannot be asked directly, the API's own view."""

    def probe() -> Check:
        replies = ping()
        if replies is None and api is not None and isinstance(api.value, dict) and "workers" in api.value:
            ok = api.value["workers"] == "ok"
            return Check("workers", "ok" if ok else "down", None, "as reported by the API's health")
        names = sorted(replies or [])
        return Check("workers", "ok" if names else "down", names, f"{len(names)} worker(s) answered ping")

    return guard("workers", probe)


def check_broker(reachable: Callable[[], bool]) -> Check:
    return guard("broker", lambda: Check("broker", "ok" if reachable() else "down", None, "broker connection"))


def check_api(api_url: str, timeout: float = 3.0) -> Check:
    """GET /health over HTTP (the runbook's curl): 200 is healthy; the API's own view of its dependencies is
    kept as the check's value."""

    def probe() -> Check:
        response = httpx.get(f"{api_url.rstrip('/')}/health", timeout=timeout)
        try:
            body = response.json()
        except ValueError:
            body = None
        checks = body.get("checks") if isinstance(body, dict) else None
        status = "ok" if response.status_code == 200 else "down"
        return Check("api", status, checks, f"HTTP {response.status_code} from {api_url}")

    return guard("api", probe)
