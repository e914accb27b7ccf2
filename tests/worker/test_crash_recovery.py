"""Failure: a publish that never happened, a worker killed mid-job, health while workers are down."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support import lot, make_tenant, query, sale, seed_items, start_stack, submit_run_direct, wait_for

pytestmark = pytest.mark.own_stack


@pytest.fixture(scope="module")
def stack(service_urls, tmp_path_factory):
    stack, base = start_stack(
        service_urls,
        Path(tmp_path_factory.mktemp("logs")),
        workers=1,
        relay=False,
        extra_env={"ASORA_DEBUG_JOB_DELAY_SECONDS": "3"},
    )
    yield stack, base
    stack.stop_all()


def _status(job_id):
    return query("SELECT status FROM jobs WHERE id = :j", {"j": job_id})[0][0]


def test_operations_that_need_a_finished_run_answer_run_in_progress(stack):
    _, base = stack
    tenant_id, owner = make_tenant(base)
    seed_items(tenant_id, ["SKU-1"])
    run_id, _ = submit_run_direct(tenant_id, [sale("S1", "SKU-1", "2024-01-02", "1")],
                                  [lot("L1", "SKU-1", "2024-01-01", "10", "3")])  # fmt: skip
    # no relay runs yet in this module: the job stays queued
    for response in (owner.post(f"/runs/{run_id}/rollback"), owner.get(f"/runs/{run_id}/journal-entry")):
        assert response.status_code == 409, response.text
        assert response.json()["error"]["reason"] == "RUN_IN_PROGRESS"
    assert owner.get(f"/runs/{run_id}").json()["status"] == "queued"


def test_relay_delivers_a_job_whose_publish_never_happened(stack):
    proc_stack, base = stack
    tenant_id, _ = make_tenant(base)
    seed_items(tenant_id, ["SKU-1"])
    run_id, job_id = submit_run_direct(
        tenant_id, [sale("S1", "SKU-1", "2024-01-02", "1")], [lot("L1", "SKU-1", "2024-01-01", "10", "3")]
    )
    assert query("SELECT published_at FROM jobs WHERE id = :j", {"j": job_id})[0][0] is None
    with pytest.raises(AssertionError):
        wait_for(lambda: _status(job_id) != "queued", 2)  # nobody was told: it stays queued

    proc_stack.start_relay()
    wait_for(lambda: _status(job_id) == "completed", 60, "the relay did not deliver the job")
    assert query("SELECT published_at IS NOT NULL FROM jobs WHERE id = :j", {"j": job_id})[0][0]
    assert query("SELECT status FROM runs WHERE id = :r", {"r": run_id})[0][0] == "completed"


def test_worker_killed_mid_job_leaves_nothing_and_the_job_completes_once(stack, service_urls):
    proc_stack, base = stack
    tenant_id, owner = make_tenant(base)
    seed_items(tenant_id, ["SKU-1"])
    response = owner.post(
        "/runs",
        json={
            "sales_data": [sale("S1", "SKU-1", "2024-01-02", "4")],
            "lots_data": [lot("L1", "SKU-1", "2024-01-01", "10", "3")],
        },
    )
    run_id, job_id = response.json()["run_id"], response.json()["job_id"]
    wait_for(lambda: _status(job_id) == "running", 30, "the job never started")
    # The worker is now inside the job's transaction (writes flushed, commit delayed): kill it outright.
    worker = proc_stack.processes["worker0"]
    proc_stack.stop("worker0", sig=signal.SIGKILL)
    assert worker.poll() is not None

    assert _status(job_id) == "running"
    for table in ("ledger_events", "lots", "run_sales"):
        assert query(f"SELECT count(*) FROM {table} WHERE tenant_id = :t", {"t": tenant_id})[0][0] == 0

    health = wait_for(
        lambda: (r := httpx.get(f"{base}/health", timeout=10)).status_code == 503 and r,
        30,
        "health stayed 200 with no worker",
    )
    assert health.json()["checks"]["workers"] == "down"
    assert health.json()["status"] == "degraded"

    proc_stack.start_worker(name="worker-recovered")
    reap = subprocess.run(
        [sys.executable, "-m", "shared.cli.main", "runs", "reap", "--stale-after", "0"],
        env=proc_stack.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert reap.returncode == 0, reap.stderr
    # The relay reaps too (every 15 s, here with a 5 s stale threshold): whichever came first re-queued it.
    reaped = query("SELECT count(*) FROM audit_events WHERE job_id = :j AND action = 'job.reaped'", {"j": job_id})
    assert "requeued" in reap.stderr + reap.stdout or reaped[0][0] == 1

    wait_for(lambda: _status(job_id) == "completed", 90, "the job did not complete after recovery")
    # Two attempts, the first lost with its worker: counted apart from attempts that raised.
    assert query("SELECT attempts, lost_attempts FROM jobs WHERE id = :j", {"j": job_id})[0] == (2, 1)
    assert query("SELECT status, total_cogs FROM runs WHERE id = :r", {"r": run_id})[0] == ("completed", 12)
    events = query("SELECT event_type, count(*) FROM ledger_events WHERE tenant_id = :t GROUP BY 1", {"t": tenant_id})
    assert dict(events) == {"RECEIPT": 1, "ISSUE": 1}
    assert httpx.get(f"{base}/health", timeout=10).status_code in (200, 503)
