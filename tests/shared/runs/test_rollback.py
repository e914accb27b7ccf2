"""Rollback on PostgreSQL through the real job runner: the reversals PostgreSQL renders chain like any other
event, whatever the text of the events they reverse."""

from __future__ import annotations

import pytest
import redis

from shared import db
from shared.auth import Principal
from shared.config import get_settings
from shared.jobs import runner
from shared.ledger import verify
from shared.registry import TABLE
from shared.runs import service as runs
from tests.support import create_tenant_direct, lot, query, sale, seed_items, submit_run_direct

# Characters that COPY leaves as they are but Python's str.splitlines() breaks lines at, and ones COPY escapes.
ODD = "\u2028\u2029\x85 \t\\ \u00e9"


@pytest.fixture
def drain(service_urls):
    client, settings = redis.Redis.from_url(service_urls["redis_url"]), get_settings()

    def drain_tenant(tenant_id: str) -> None:
        runner.drain_tenant(tenant_id, worker="rollback-test", redis_client=client, settings=settings, kinds=TABLE)

    return drain_tenant


def test_reversals_of_events_with_line_breaking_text_chain_and_restore_the_lots(drain):
    tenant_id = create_tenant_direct("rbk")
    seed_items(tenant_id, ["R-1"])
    lots = [lot(f"L{ODD}1", "R-1", "2024-03-01", "10", "1.5"), lot("L2", "R-1", "2024-03-02", "5", "2")]
    sales = [sale(f"S{ODD}{i}", "R-1", f"2024-03-0{3 + i}T00:00:00Z", "4") for i in range(3)]
    run_id, _ = submit_run_direct(tenant_id, sales, lots)
    drain(tenant_id)
    assert query("SELECT status FROM runs WHERE id = :r", {"r": run_id})[0][0] == "completed"

    actor = Principal(key_id="test", role="owner", role_model="standard", tenant_id=tenant_id)
    with db.unit_of_work(tenant_id) as session:
        job_id = runs.request_rollback(session, tenant_id=tenant_id, actor=actor, run_id=run_id, cascade=False).id
    drain(tenant_id)
    assert query("SELECT status, error FROM jobs WHERE id = :j", {"j": job_id})[0][0] == "completed"

    events = query("SELECT event_type, reference FROM ledger_events ORDER BY seq", {}, tenant_id)
    written = [e.reference for e in events if e.event_type != "REVERSAL"]
    assert [e.reference for e in events if e.event_type == "REVERSAL"] == written  # one each, in the run's order
    assert set(written) == {f"L{ODD}1", "L2", *(s["sale_id"] for s in sales)}
    assert {(r.lot_id, r.remaining_quantity, r.status) for r in query("SELECT * FROM lots", {}, tenant_id)} == {
        (f"L{ODD}1", 0, "reversed"),
        ("L2", 0, "reversed"),
    }
    with verify.snapshot(tenant_id) as session:
        result = verify.verify_ledger(session, tenant_id)
    assert result.ok, result.differences
