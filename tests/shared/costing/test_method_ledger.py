"""Runs of every method through the real job runner (no worker processes): costing in several runs gives the
books one run gives, a moving-average pool's carried value survives runs and rollbacks, and verify holds."""

from __future__ import annotations

from decimal import Decimal

import pytest
import redis
from sqlalchemy import text

from shared import db
from shared.auth import Principal
from shared.config import get_settings
from shared.costing import Method
from shared.errors import ValidationFailed
from shared.jobs import runner
from shared.ledger import verify
from shared.registry import TABLE
from shared.runs import methods
from shared.runs import service as runs
from tests.support import create_tenant_direct, lot, query, sale, seed_items, submit_run_direct

LOTS = [
    lot("B1", "B", "2024-05-01", "3", "10"),
    lot("B2", "B", "2024-05-02", "3", "10.0001"),  # the average 10.00005 rounds to 10.0000 and stays in force
    lot("L1", "A", "2024-05-01", "10", "10"),
    lot("L2", "A", "2024-05-02", "10", "20"),
    lot("L3", "A", "2024-05-05", "3.5", "13.3333"),
    lot("L4", "A", "2024-05-07", "1", "0.0001"),
]
SALES = [
    sale("T1", "B", "2024-05-03", "1"),
    sale("S1", "A", "2024-05-03", "7"),
    sale("S2", "A", "2024-05-04", "8.25"),
    sale("S3", "A", "2024-05-06", "3"),
    sale("S4", "A", "2024-05-08", "2.1"),
    sale("T2", "B", "2024-05-08", "1"),
    sale("S5", "A", "2024-05-09", "3.15"),
]


@pytest.fixture
def drain(service_urls):
    client, settings = redis.Redis.from_url(service_urls["redis_url"]), get_settings()

    def drain_tenant(tenant_id: str) -> None:
        runner.drain_tenant(tenant_id, worker="methods-test", redis_client=client, settings=settings, kinds=TABLE)

    return drain_tenant


def _costs(tenant_id: str) -> dict[str, Decimal]:
    rows = query(
        "SELECT s.sale_id, s.cogs FROM run_sales s JOIN runs r ON r.id = s.run_id "
        "WHERE r.status = 'completed' AND NOT r.dry_run",
        tenant_id=tenant_id,
    )
    return {row[0]: row[1] for row in rows}


def _verified(tenant_id: str) -> None:
    with verify.snapshot(tenant_id) as session:
        result = verify.verify_ledger(session, tenant_id)
    assert result.ok, result.as_dict()


@pytest.mark.parametrize("mode", ["fifo", "lifo", "moving_average"])
def test_costing_in_several_runs_gives_the_books_of_one_run(drain, mode):
    whole, split = create_tenant_direct("mth1"), create_tenant_direct("mth2")
    seed_items(whole, ["A", "B"])
    seed_items(split, ["A", "B"])
    submit_run_direct(whole, SALES, LOTS, mode=mode)
    drain(whole)
    submit_run_direct(split, SALES[:3], LOTS[:4], mode=mode)
    submit_run_direct(split, SALES[3:5], LOTS[4:], mode=mode)
    submit_run_direct(split, SALES[5:], None, mode=mode)
    drain(split)
    assert len(_costs(whole)) == 7
    assert _costs(split) == _costs(whole)
    if mode == "moving_average":
        assert (_costs(whole)["T1"], _costs(whole)["T2"]) == (Decimal(10), Decimal(10))
    stock_in = sum(Decimal(x["original_quantity"]) * Decimal(x["unit_price"]) for x in LOTS)
    with db.unit_of_work(split) as session:
        ledger_value = session.scalar(text("SELECT sum(amount) FROM ledger_events"))
    assert ledger_value == stock_in - sum(_costs(split).values())
    _verified(whole)
    _verified(split)


def test_a_moving_average_pool_carries_its_value_across_runs_and_rollbacks(drain):
    tenant_id = create_tenant_direct("mth3")
    seed_items(tenant_id, ["A"])
    submit_run_direct(tenant_id, [sale("S1", "A", "2024-05-03", "15")], LOTS[2:4], mode="moving_average")
    drain(tenant_id)

    def carried() -> Decimal:
        with db.unit_of_work(tenant_id) as session:
            return methods.carried_values(session, tenant_id, ["A"]).get("A", Decimal(0))

    assert carried() == Decimal(-25)  # 5 left worth 75 in the pool, 100 at L2's own cost
    second, _ = submit_run_direct(tenant_id, [sale("S2", "A", "2024-05-04", "2")], None, mode="moving_average")
    drain(tenant_id)
    assert _costs(tenant_id)["S2"] == Decimal(30)
    actor = Principal(key_id="test", role="owner", role_model="standard", tenant_id=tenant_id)
    with db.unit_of_work(tenant_id) as session:
        runs.request_rollback(session, tenant_id=tenant_id, actor=actor, run_id=second, cascade=False)
    drain(tenant_id)
    assert carried() == Decimal(-25)
    # A dry run previews another method (nothing is written, so nothing switches); a real one is refused at intake.
    preview, _ = submit_run_direct(tenant_id, [sale("S3", "A", "2024-05-05", "5")], None, dry_run=True, mode="lifo")
    with pytest.raises(ValidationFailed) as refused:
        submit_run_direct(tenant_id, [sale("S3", "A", "2024-05-05", "5")], None, mode="lifo")
    assert refused.value.reason == "VALUATION_METHOD_MISMATCH"
    assert [(d["row"], d["field"], d["file"]) for d in refused.value.details] == [(1, "sku", "sales")]
    assert "'A' is costed under moving_average" in refused.value.message
    drain(tenant_id)
    outcome = {
        r[0]: (r[1], r[2], (r[3] or {}).get("reason"))
        for r in query("SELECT id, status, total_cogs, error FROM runs", tenant_id=tenant_id)
    }
    assert outcome[preview] == ("validated", Decimal(100), None)  # L2's 5 at 20: LIFO ignores the pool
    submit_run_direct(tenant_id, [sale("S3", "A", "2024-05-05", "5")], None, mode="moving_average")
    drain(tenant_id)
    assert _costs(tenant_id)["S3"] == Decimal(75)  # the pool's value: 5 x 15, and the pool is empty
    assert carried() == 0
    assert query("SELECT sum(amount) FROM ledger_events", tenant_id=tenant_id) == [(0,)]
    _verified(tenant_id)


def test_a_switch_between_intake_and_execution_fails_the_run_in_the_worker(drain):
    """Intake refuses a run for a SKU held to another method, but a switch can land after a run is accepted:
    the worker checks again under the tenant fence, and the run fails writing nothing."""
    tenant_id = create_tenant_direct("mth5")
    seed_items(tenant_id, ["A"])
    submit_run_direct(tenant_id, [sale("S1", "A", "2024-05-03", "1")], LOTS[2:4], mode="fifo")
    drain(tenant_id)
    accepted, _ = submit_run_direct(tenant_id, [sale("S2", "A", "2024-05-04", "1")], None, mode="fifo")
    actor = Principal(key_id="test", role="owner", role_model="standard", tenant_id=tenant_id)
    with db.unit_of_work(tenant_id) as session:
        methods.switch_sku(session, tenant_id, "A", Method.LIFO, actor=actor)
    drain(tenant_id)
    [(status, error)] = query("SELECT status, error FROM runs WHERE id = :r", {"r": accepted}, tenant_id=tenant_id)
    assert (status, error["reason"]) == ("failed", "VALUATION_METHOD_MISMATCH")
    assert query("SELECT count(*) FROM ledger_events WHERE run_id = :r", {"r": accepted}, tenant_id=tenant_id) == [(0,)]
