"""Liveness of every dependency (shared/health.py), and Prometheus metrics."""

from __future__ import annotations

from typing import Literal

import anyio.to_thread
from anyio import CapacityLimiter
from fastapi import Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from api.deps import api_router, lane
from api.metrics import JobsCollector
from api.openapi import content
from shared import health
from shared.config import get_settings
from shared.db import get_engine
from shared.metrics import scrape_registry
from worker import health as worker_health

router = api_router(tags=["ops"])
CheckStatus = Literal["ok", "warning", "alert", "down"]


class HealthChecks(BaseModel):
    database: CheckStatus
    redis: CheckStatus
    broker: CheckStatus
    workers: CheckStatus
    migrations: CheckStatus


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    checks: HealthChecks


_HEALTH: dict[int | str, dict[str, object]] = {
    200: {"description": "every dependency answers"},
    503: {"model": HealthOut, "description": "a dependency is down (the checks say which)"},
}


# Health has its own lane: requests that wait on row locks may hold every thread of the shared pool, and a
# probe must still see the dependencies. Two threads, so a probe never queues behind more than one other.
def _lane() -> CapacityLimiter:
    return lane("health", 2)


@router.get("/health", operation_id="health", response_model=HealthOut, responses=_HEALTH)
@router.get("/api/v1/health", operation_id="health_v1", include_in_schema=False)
async def health_check() -> JSONResponse:
    return await anyio.to_thread.run_sync(_check, limiter=_lane())


def _check() -> JSONResponse:
    engine = get_engine()
    checks = [
        health.check_database(engine),
        health.check_redis(get_settings().redis_url or ""),
        health.check_broker(worker_health.broker_reachable),
        health.check_workers(worker_health.ping_workers),
        health.check_migrations(engine),
    ]
    healthy = all(c.ok for c in checks)
    return JSONResponse(
        status_code=200 if healthy else 503,
        content={"status": "ok" if healthy else "degraded", "checks": {c.name: c.status for c in checks}},
    )


@router.get("/livez", operation_id="liveness")
def liveness() -> dict[str, str]:
    """The process answers requests (no dependency is checked): what a liveness probe needs. A frozen event
    loop or an exhausted threadpool cannot answer it, so the orchestrator restarts the process."""
    return {"status": "alive"}


@router.get(
    "/metrics",
    operation_id="metrics",
    response_class=Response,
    responses=content("text/plain", "Prometheus text exposition format"),
)
def metrics() -> Response:
    return Response(generate_latest(scrape_registry(JobsCollector())), media_type=CONTENT_TYPE_LATEST)
