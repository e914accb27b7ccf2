"""The job runner's failure handling, in-process on real PostgreSQL and Redis."""

from __future__ import annotations

import secrets
import time

import redis

from tests.support import query, seed_items, submit_run_direct


def _tenant() -> str:
    from shared import db
    from shared.tenants import service as tenants

    tenant_id = f"runner-{secrets.token_hex(4)}"
    with db.unit_of_work() as session:
        tenants.create_tenant(
            session, tenant_id=tenant_id, name=tenant_id, plan="enterprise", role_model="standard", actor=None
        )
    seed_items(tenant_id, ["SKU-1"])
    return tenant_id


def test_a_job_that_crashes_every_time_fails_after_the_attempt_cap_and_the_next_job_still_runs(service_urls):
    from sqlalchemy import text

    from shared import db
    from shared.config import get_settings
    from shared.jobs import runner
    from shared.registry import TABLE

    tenant_id = _tenant()
    broken_run, broken_job = submit_run_direct(tenant_id, [{"sale_id": "S1", "sku": "SKU-1", "sale_date": "2024-01-02",
                                                            "quantity_sold": "1"}])  # fmt: skip
    with db.unit_of_work(tenant_id) as session:  # its input is gone: parsing it raises, not a domain error
        session.execute(text("UPDATE job_blobs SET content = 'not json' WHERE job_id = :j"), {"j": broken_job})
    _, next_job = submit_run_direct(
        tenant_id,
        [{"sale_id": "S2", "sku": "SKU-1", "sale_date": "2024-01-03", "quantity_sold": "1"}],
        [{"lot_id": "L1", "sku": "SKU-1", "received_date": "2024-01-01", "original_quantity": "5",
          "remaining_quantity": "5", "unit_price": "2"}],
    )  # fmt: skip

    settings = get_settings()
    client = redis.Redis.from_url(service_urls["redis_url"])
    # Each crash re-queues the job after a back-off (0.2 s, then 0.4 s here), so a drain that meets the job
    # inside its back-off leaves it: no hot loop. Drains keep coming (as wake-ups would) until it is decided.
    drains = 0
    while query("SELECT status FROM jobs WHERE id = :j", {"j": next_job})[0][0] != "completed" and drains < 100:
        runner.drain_tenant(tenant_id, worker="test", redis_client=client, settings=settings, kinds=TABLE)
        drains += 1
        time.sleep(0.05)
    assert drains > settings.job_max_attempts, "the back-off made drains leave the job between attempts"

    status, attempts, error = query("SELECT status, attempts, error FROM jobs WHERE id = :j", {"j": broken_job})[0]
    assert (status, attempts) == ("failed", settings.job_max_attempts)
    assert (error["code"], error["reason"]) == ("INTERNAL", "ATTEMPTS_EXHAUSTED")
    assert query("SELECT status FROM runs WHERE id = :r", {"r": broken_run})[0][0] == "failed"
    assert query("SELECT count(*) FROM run_sales WHERE run_id = :r", {"r": broken_run})[0][0] == 0
    assert query("SELECT status FROM jobs WHERE id = :j", {"j": next_job})[0][0] == "completed"
    outcomes = query("SELECT outcome, reason FROM audit_events WHERE job_id = :j", {"j": broken_job})
    assert ("failed", "ATTEMPTS_EXHAUSTED") in outcomes
