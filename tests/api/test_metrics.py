"""/metrics behind several API processes: every scrape sums every process (prometheus_client's multiprocess
mode, shared/metrics.py), so a counter never goes backwards between scrapes and counts each request once."""

from __future__ import annotations

import re

import httpx

from tests.support import make_tenant, seed_master_data

REQUESTS = 60


def _sample(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$"
    values = [float(m.group(1)) for m in re.finditer(pattern, text, re.MULTILINE)]
    assert len(values) == 1, f"{name}{labels} not exactly once in /metrics"
    return values[0]


def _livez_count(http: httpx.Client) -> float:
    text = http.get("/metrics").text
    return _sample(text, "asora_http_requests_total", '{method="GET",route="/livez",status="200"}')


def test_a_scrape_counts_the_requests_of_every_api_process(shared_stack):
    # A connection per request, so the requests and the scrapes spread over the processes.
    fresh = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=shared_stack, timeout=10, limits=fresh) as http:
        http.get("/livez")  # the series exists before the first reading
        before = _livez_count(http)
        for _ in range(REQUESTS):
            assert http.get("/livez").status_code == 200
        readings = [_livez_count(http) for _ in range(6)]  # each scrape may reach another process
    assert readings == [before + REQUESTS] * 6


def test_the_tenant_counter_hold_is_measured_for_each_accepted_job(shared_stack):
    _, owner = make_tenant(shared_stack, prefix="metrics")
    md = seed_master_data(owner, skus=("MET-1",))
    with httpx.Client(base_url=shared_stack, timeout=10) as http:
        before = _sample(http.get("/metrics").text, "asora_intake_counter_hold_seconds_count")
        receipt = {
            "vendor_id": md.vendor_id,
            "received_at": "2024-07-01T00:00:00Z",
            "lines": [{"sku": "MET-1", "quantity": 1, "unit_cost": 2}],
        }
        for _ in range(5):
            assert owner.post("/receipts", json=receipt).status_code == 202
        after = _sample(http.get("/metrics").text, "asora_intake_counter_hold_seconds_count")
    assert after - before == 5
