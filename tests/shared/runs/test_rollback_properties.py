"""Property: rolling a run back returns lot balances, stock and the costing boundary exactly to their state
before the run, whatever the run contained. Runs execute through the real job runner on PostgreSQL and Redis
(in-process, without Celery: the pipeline itself is tested with real workers elsewhere)."""

from __future__ import annotations

from decimal import Decimal

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import lot, query, sale, seed_items, submit_run_direct
from tests.tier import examples

SKUS = ["P-1", "P-2", "P-3"]


@pytest.fixture(scope="module")
def runner_env(service_urls):
    from shared.config import get_settings

    return redis.Redis.from_url(service_urls["redis_url"]), get_settings()


def _tenant():
    import secrets

    from shared import db
    from shared.tenants import service as tenants

    tenant_id = f"prop-{secrets.token_hex(4)}"
    with db.unit_of_work() as session:
        tenants.create_tenant(
            session, tenant_id=tenant_id, name=tenant_id, plan="enterprise", role_model="standard", actor=None
        )
    seed_items(tenant_id, SKUS)
    return tenant_id


def _drain(tenant_id, env):
    from shared.jobs import runner
    from shared.registry import TABLE

    client, cfg = env
    runner.drain_tenant(tenant_id, worker="property-test", redis_client=client, settings=cfg, kinds=TABLE)


def _state(tenant_id):
    return {
        "lots": sorted(
            query(
                "SELECT lot_id, remaining_quantity, status FROM lots WHERE tenant_id = :t AND status = 'live'",
                {"t": tenant_id},
            )
        ),
        "stock": sorted(
            query(
                "SELECT sku, sum(quantity), sum(amount) FROM ledger_events WHERE tenant_id = :t "
                "GROUP BY sku HAVING sum(quantity) <> 0 OR sum(amount) <> 0",
                {"t": tenant_id},
            )
        ),
        "costed": sorted(query("SELECT sku, last_sale_date FROM costed_skus WHERE tenant_id = :t", {"t": tenant_id})),
    }


quantities = st.integers(min_value=1, max_value=40_000).map(lambda q: str(Decimal(q) / 100))
costs = st.integers(min_value=0, max_value=99_999).map(lambda c: str(Decimal(c) / 1000))
days = st.integers(min_value=10, max_value=28)


@st.composite
def runs(draw):
    lots = [
        lot(
            f"N{i}",
            draw(st.sampled_from(SKUS)),
            f"2024-03-{draw(days):02d}",
            draw(quantities),
            draw(costs),
            draw(costs),
        )
        for i in range(draw(st.integers(0, 5)))
    ]
    sales = [
        sale(f"X{i}", draw(st.sampled_from(SKUS)), f"2024-03-{draw(days):02d}T12:00:00Z", draw(quantities))
        for i in range(draw(st.integers(1, 8)))
    ]
    return sales, lots


@settings(max_examples=examples(12), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(run=runs())
def test_rollback_restores_state_exactly(runner_env, run):
    tenant_id = _tenant()
    # an earlier run leaves partially consumed lots and costed sales behind
    base_lots = [lot(f"B-{sku}", sku, "2024-03-01", "300", "1.2345", "0.01") for sku in SKUS]
    _, base_job = submit_run_direct(
        tenant_id, [sale(f"B{i}", sku, "2024-03-05", "7.5") for i, sku in enumerate(SKUS)], base_lots
    )
    _drain(tenant_id, runner_env)
    assert query("SELECT status FROM jobs WHERE id = :j", {"j": base_job})[0][0] == "completed"
    before = _state(tenant_id)

    sales, lots = run
    run_id, _ = submit_run_direct(tenant_id, sales, lots)
    _drain(tenant_id, runner_env)
    status = query("SELECT status FROM runs WHERE id = :r", {"r": run_id})[0][0]
    if status == "failed":  # e.g. not enough stock: nothing may have changed
        assert _state(tenant_id) == before
        return
    assert status == "completed"
    total = query("SELECT total_cogs FROM runs WHERE id = :r", {"r": run_id})[0][0]
    issued = query("SELECT -sum(amount) FROM ledger_events WHERE run_id = :r AND event_type = 'ISSUE'", {"r": run_id})[
        0
    ][0]
    assert total == issued  # cost conserved between the run's totals and its ledger events

    from shared import db
    from shared.auth import Principal
    from shared.runs import service as runs_service

    actor = Principal(key_id="test", role="owner", role_model="standard", tenant_id=tenant_id)
    with db.unit_of_work(tenant_id) as session:
        rollback = runs_service.request_rollback(
            session, tenant_id=tenant_id, actor=actor, run_id=run_id, cascade=False
        )
        rollback_id = rollback.id
    _drain(tenant_id, runner_env)
    assert query("SELECT status FROM jobs WHERE id = :j", {"j": rollback_id})[0][0] == "completed"
    assert _state(tenant_id) == before
    # and every reversal points at the event it reverses, with the opposite quantity and amount
    mismatched = query(
        """SELECT count(*) FROM ledger_events r JOIN ledger_events o
                          ON o.tenant_id = r.tenant_id AND o.seq = r.reverses_seq
                          WHERE r.tenant_id = :t AND r.event_type = 'REVERSAL'
                            AND (r.quantity <> -o.quantity OR r.amount <> -o.amount OR r.lot_id <> o.lot_id)""",
        {"t": tenant_id},
    )
    assert mismatched[0][0] == 0
