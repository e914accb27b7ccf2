"""Prometheus instruments shared by the API's middleware and collectors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text

from shared import db

REQUESTS = Counter("asora_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("asora_http_request_duration_seconds", "HTTP request latency", ["method", "route"])


class JobsCollector(Collector):
    """Jobs by status, read at scrape time (queue depth and failures without a separate exporter)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("asora_jobs", "Jobs by kind and status", labels=["kind", "status"])
        try:
            with db.unit_of_work(db.SYSTEM_SCOPE) as session:
                rows = session.execute(text("SELECT kind, status, n FROM asora_sys_job_counts()"))
                for kind, status, count in rows:
                    gauge.add_metric([kind, status], count)
        except Exception:  # noqa: S110 - a scrape must not fail because the database is down
            pass
        yield gauge


def register_collectors() -> None:
    with contextlib.suppress(ValueError):  # already registered in this process
        REGISTRY.register(JobsCollector())
