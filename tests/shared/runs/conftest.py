"""Fixtures of the run tests."""

from __future__ import annotations

import pytest
import redis

from shared.config import get_settings
from shared.jobs import runner
from shared.registry import TABLE
from tests.support import query


@pytest.fixture
def drain(service_urls):
    client, settings = redis.Redis.from_url(service_urls["redis_url"]), get_settings()

    def drain_tenant(tenant_id: str) -> None:
        """Run the tenant's jobs, including those its jobs queued (a repost behind a backdated receipt: no
        publisher runs in this process, so nothing wakes the stream for it)."""
        for _ in range(5):
            runner.drain_tenant(tenant_id, worker="backdated-test", redis_client=client, settings=settings, kinds=TABLE)
            if not query("SELECT 1 FROM jobs WHERE status IN ('queued', 'running')", {}, tenant_id):
                return
        raise AssertionError("jobs are still queued")

    return drain_tenant
