"""The job pipeline with real workers: order, exactly-once effects, per-tenant exclusion, Flower."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import httpx
import pytest

from tests.support import (
    lot,
    make_tenant,
    query,
    sale,
    seed_items,
    start_stack,
    submit_run_direct,
    wait_for,
)

pytestmark = pytest.mark.own_stack

DELAY = "0.3"
FLOWER_AUTH = "ops:flower-test-secret"


@pytest.fixture(scope="module")
def stack(service_urls, tmp_path_factory):
    stack, base = start_stack(
        service_urls,
        Path(tmp_path_factory.mktemp("logs")),
        workers=2,
        extra_env={"ASORA_DEBUG_JOB_DELAY_SECONDS": DELAY, "FLOWER_BASIC_AUTH": FLOWER_AUTH},
    )
    yield stack, base
    stack.stop_all()


def _wait_terminal(job_ids, timeout=90):
    def done():
        rows = query("SELECT id, status FROM jobs WHERE id = ANY(:ids)", {"ids": job_ids})
        return rows if all(status in ("completed", "failed") for _, status in rows) else None

    return wait_for(done, timeout, "jobs did not finish")


def test_jobs_run_in_acceptance_order_despite_duplicated_and_shuffled_messages(stack):
    _, base = stack
    tenant_id, _ = make_tenant(base)
    seed_items(tenant_id, ["SKU-1"])
    # Run k sells on day k. Executed out of order, an earlier-dated sale would arrive after a later one
    # had been costed and fail as BACKDATED_SALE, so "all completed" is itself proof of order.
    jobs = []
    for k in range(1, 9):
        lots = [lot("L1", "SKU-1", "2024-01-01", "1000", "2.5")] if k == 1 else None
        jobs.append(submit_run_direct(tenant_id, [sale(f"S{k}", "SKU-1", f"2024-01-{k + 1:02d}", "10")], lots))

    from shared.jobs.kinds import JobKind
    from shared.jobs.outbox import Wakeup
    from worker.publisher import publish

    messages = [Wakeup(job_id, tenant_id, JobKind.COGS_RUN) for _, job_id in jobs for _ in range(3)]
    random.Random(7).shuffle(messages)
    publish(messages)

    _wait_terminal([job_id for _, job_id in jobs])
    runs = query(
        "SELECT r.id, r.status, j.seq, r.completed_seq FROM runs r JOIN jobs j ON j.id = r.job_id "
        "WHERE r.tenant_id = :t ORDER BY j.seq",
        {"t": tenant_id},
    )
    assert [status for _, status, _, _ in runs] == ["completed"] * 8
    order = query(
        "SELECT run_id, min(seq) FROM ledger_events WHERE tenant_id = :t AND event_type = 'ISSUE' "
        "GROUP BY run_id ORDER BY min(seq)",
        {"t": tenant_id},
    )
    assert [run_id for run_id, _ in order] == [run_id for run_id, *_ in runs]
    effects = query(
        "SELECT event_type, count(*) FROM ledger_events WHERE tenant_id = :t GROUP BY event_type", {"t": tenant_id}
    )
    assert dict(effects) == {"RECEIPT": 1, "ISSUE": 8}
    assert query("SELECT remaining_quantity FROM lots WHERE tenant_id = :t", {"t": tenant_id})[0][0] == 920
    attempts = query("SELECT attempts FROM jobs WHERE tenant_id = :t", {"t": tenant_id})
    assert {a for (a,) in attempts} == {1}


def test_one_tenant_never_runs_concurrently_while_tenants_run_in_parallel(stack):
    _, base = stack
    tenants = []
    for _ in range(2):
        tenant_id, owner = make_tenant(base)
        seed_items(tenant_id, ["SKU-1"])
        tenants.append((tenant_id, owner))
    job_ids = []
    for k in range(4):
        for _, owner in tenants:
            body = {
                "sales_data": [sale(f"S{k}", "SKU-1", f"2024-02-{k + 2:02d}", "1")],
                "lots_data": [lot("L1", "SKU-1", "2024-02-01", "100", "1")] if k == 0 else [],
            }
            response = owner.post("/runs", json=body)
            assert response.status_code == 202, response.text
            job_ids.append(response.json()["job_id"])
    _wait_terminal(job_ids)

    windows = {}
    for tenant_id, _ in tenants:
        rows = query(
            "SELECT status, started_at, finished_at FROM jobs WHERE tenant_id = :t ORDER BY seq", {"t": tenant_id}
        )
        assert [status for status, _, _ in rows] == ["completed"] * 4
        for (_, _, finished), (_, started, _) in itertools.pairwise(rows):
            assert finished <= started, "a tenant's next job started before the previous one finished"
        windows[tenant_id] = [(started, finished) for _, started, finished in rows]
    (a, b) = windows.values()
    assert any(sa < fb and sb < fa for sa, fa in a for sb, fb in b), "different tenants never ran in parallel"


def test_flower_requires_auth_and_shows_job_ids_not_payloads(stack, service_urls):
    from shared.stack import free_port, wait_http

    proc_stack, base = stack
    port = free_port()
    proc_stack.start_flower(port)
    flower = f"http://127.0.0.1:{port}"
    assert wait_http(f"{flower}/healthcheck", timeout=30)
    assert httpx.get(f"{flower}/api/tasks", timeout=5).status_code == 401

    tenant_id, owner = make_tenant(base)
    seed_items(tenant_id, ["SKU-1"])
    secret_marker = "PAYLOAD-MARKER-7f3a"
    response = owner.post(
        "/runs",
        json={
            "sales_data": [sale(secret_marker, "SKU-1", "2024-03-02", "1")],
            "lots_data": [lot("L1", "SKU-1", "2024-03-01", "5", "1")],
        },
    )
    job_id = response.json()["job_id"]
    user, password = FLOWER_AUTH.split(":")
    auth = (user, password)

    def seen():
        tasks = httpx.get(f"{flower}/api/tasks", auth=auth, timeout=5).json()
        return [t for t in tasks.values() if job_id in str(t.get("kwargs"))]

    tasks = wait_for(seen, 30, "Flower never saw the task")
    assert tasks[0]["name"] == "asora.jobs.cogs_run"
    assert tasks[0]["uuid"] == job_id  # every job is listed under its own id
    assert "cogs_run" in str(tasks[0]["kwargs"])
    everything = httpx.get(f"{flower}/api/tasks", auth=auth, timeout=5).text
    assert secret_marker not in everything
    assert owner.key not in everything
