"""Prometheus instruments observed outside the API's middleware, and the registry `/metrics` serves.

With several API processes behind one port, each process counts apart, and a scrape reaches one of them. So
when `PROMETHEUS_MULTIPROC_DIR` is set (`asora up`, the deploy manifests), every process writes its samples
there and a scrape sums them (prometheus_client's multiprocess mode); the directory must be emptied before the
processes start.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, Histogram, multiprocess
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# The tenant's critical section of intake: from the moment the numbering statement has the `tenant_counters`
# row lock to the end of the COMMIT that releases it (shared/jobs/service.py); waiting for the lock is not in
# it. Its sum against the request durations' is the share of intake time the tenant's other requests wait on.
COUNTER_HOLD = Histogram(
    "asora_intake_counter_hold_seconds",
    "Time a request holds its tenant's job counter (lock taken to end of COMMIT)",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)


def scrape_registry(*collectors: Collector) -> CollectorRegistry:
    """What a scrape reads: every process's samples in multiprocess mode, this process's otherwise; plus
    `collectors` (read at scrape time, such as the jobs gauge)."""
    if not os.environ.get(MULTIPROC_ENV):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    for collector in collectors:
        registry.register(collector)
    return registry
