"""Celery adapters over the job runner."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import redis
from celery import Task

from shared.config import get_settings
from shared.jobs import runner
from worker.celery_app import app


@lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    return redis.Redis.from_url(get_settings().redis_url or "")


@app.task(name="asora.jobs.execute", bind=True)
def execute(self: Task[Any, Any], job_id: str, kind: str, tenant_id: str) -> dict[str, Any]:
    """Wake the tenant's drain. `job_id` and `kind` name the job that caused the message (for Flower); the
    drain runs whatever the tenant has pending, oldest first."""
    executed = runner.drain_tenant(
        tenant_id, worker=str(self.request.hostname), redis_client=_redis(), settings=get_settings()
    )
    return {"job_id": job_id, "kind": kind, "executed": executed}


@app.task(name="asora.jobs.reap")
def reap() -> list[dict[str, Any]]:
    return runner.reap_stale_jobs(get_settings())
