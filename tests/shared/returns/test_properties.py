"""Properties of returns and landed costs mixed with runs, whatever their order and sizes: every job either
posts whole or writes nothing; each lot's ledger amounts sum to its remaining quantity times its unit cost
(so on-hand value is exactly what came in less what went out); a landed cost's parts sum to it exactly; no
sale is returned beyond what it sold; and `asora ledger verify` finds nothing. Jobs execute through the real
job runner on PostgreSQL and Redis, in process (the pipeline with real workers is tests/api/test_returns.py)."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.errors import ValidationFailed
from tests.support import lot, query, sale, seed_items, submit_run_direct
from tests.tier import examples

SKU = "PR-1"
AT = "2024-03-{:02d}T12:00:00Z"


@pytest.fixture(scope="module")
def runner_env(service_urls: dict[str, str]) -> tuple[Any, Any]:
    from shared.config import get_settings

    return redis.Redis.from_url(service_urls["redis_url"]), get_settings()


def _tenant() -> str:
    from shared import db
    from shared.tenants import service as tenants

    tenant_id = f"retprop-{secrets.token_hex(4)}"
    with db.unit_of_work() as session:  # tenants are created unscoped, by the app login (docs/security.md)
        tenants.create_tenant(
            session, tenant_id=tenant_id, name=tenant_id, plan="enterprise", role_model="standard", actor=None
        )
    seed_items(tenant_id, [SKU])
    return tenant_id


def _drain(tenant_id: str, env: tuple[Any, Any]) -> None:
    from shared.jobs import runner
    from shared.registry import TABLE

    client, cfg = env
    runner.drain_tenant(tenant_id, worker="property-test", redis_client=client, settings=cfg, kinds=TABLE)


def _submit(tenant_id: str, op: tuple[Any, ...]) -> None:
    """Accept one return or landed cost as the API does; a refusal at intake writes nothing."""
    from shared import db
    from shared.auth import Principal
    from shared.landed_costs import service as landed_costs
    from shared.landed_costs.schemas import LandedCostCreate
    from shared.returns import service as returns
    from shared.returns.schemas import ReturnCreate

    actor = Principal(key_id="test", role="owner", role_model="standard", tenant_id=tenant_id)
    kind, target, amount, day = op
    try:
        with db.unit_of_work(tenant_id) as session:
            if kind == "landed":
                body = LandedCostCreate.model_validate(
                    {"lot_id": target, "amount": amount, "allocated_at": AT.format(day)}
                )
                landed_costs.submit_landed_cost(session, tenant_id=tenant_id, actor=actor, body=body)
            else:
                subject = "sale_id" if kind == "sale" else "lot_id"
                returned = ReturnCreate.model_validate(
                    {"kind": kind, subject: target, "quantity": amount, "returned_at": AT.format(day)}
                )
                returns.submit_return(session, tenant_id=tenant_id, actor=actor, body=returned)
    except ValidationFailed:
        pass


quantities = st.integers(min_value=1, max_value=2_000).map(lambda q: str(Decimal(q) / 100))
sold = st.integers(min_value=1, max_value=600).map(lambda q: str(Decimal(q) / 100))  # a base run that mostly fits
costs = st.integers(min_value=0, max_value=99_999).map(lambda c: str(Decimal(c) / 1000))
amounts = st.integers(min_value=1, max_value=10**6).map(lambda a: str(Decimal(a) / 100))
LOTS = [f"L{i}" for i in range(4)]
SALES = [f"S{i}" for i in range(6)]
operation = st.one_of(
    st.tuples(st.just("sale"), st.sampled_from(SALES), quantities, st.integers(20, 28)),
    st.tuples(st.just("purchase"), st.sampled_from(LOTS), quantities, st.integers(20, 28)),
    st.tuples(st.just("landed"), st.sampled_from(LOTS), amounts, st.integers(20, 28)),
    st.tuples(st.just("run"), st.sampled_from(SALES), quantities, st.integers(20, 28)),
)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[tuple[Any, ...]]]:
    lots = [lot(name, SKU, f"2024-03-{n + 1:02d}", draw(quantities), draw(costs)) for n, name in enumerate(LOTS)]
    sales = [sale(name, SKU, f"2024-03-{10 + n:02d}T00:00:00Z", draw(sold)) for n, name in enumerate(SALES)]
    return lots, sales, draw(st.lists(operation, min_size=1, max_size=8))


def _check_books(tenant_id: str) -> None:
    from shared.ledger import verify

    with verify.snapshot(tenant_id) as session:
        found = verify.verify_ledger(session, tenant_id)
    assert found.ok, found.as_dict()
    off = query(
        """SELECT l.lot_id, l.remaining_quantity * l.unit_cost, sum(e.amount) FROM lots l
           JOIN ledger_events e ON e.tenant_id = l.tenant_id AND e.lot_id = l.lot_id
           WHERE l.tenant_id = :t AND l.status = 'live'
           GROUP BY l.lot_id, l.remaining_quantity, l.unit_cost
           HAVING l.remaining_quantity * l.unit_cost <> sum(e.amount)""",
        {"t": tenant_id},
    )
    assert off == []
    unbalanced = query(
        """SELECT c.id FROM landed_costs c JOIN landed_cost_lines x ON x.landed_cost_id = c.id
           WHERE c.tenant_id = :t GROUP BY c.id, c.amount HAVING sum(x.amount) <> c.amount""",
        {"t": tenant_id},
    )
    assert unbalanced == []
    # each landed cost's events: +amount on the lot, minus every part that is not the lot's units on hand
    events = query(
        """SELECT c.id FROM landed_costs c JOIN jobs j ON j.id = c.job_id AND j.status = 'completed'
           JOIN ledger_events e ON e.tenant_id = c.tenant_id AND e.job_id = c.job_id
           WHERE c.tenant_id = :t GROUP BY c.id
           HAVING sum(e.amount) <> coalesce((SELECT sum(x.amount) FROM landed_cost_lines x
                                              WHERE x.landed_cost_id = c.id AND x.target = 'on_hand'), 0)""",
        {"t": tenant_id},
    )
    assert events == []
    over = query(
        """SELECT s.sale_id FROM run_sales s JOIN runs r ON r.id = s.run_id AND r.status = 'completed'
           JOIN returns t ON t.tenant_id = s.tenant_id AND t.sale_id = s.sale_id
           JOIN return_lines rl ON rl.return_id = t.id AND rl.run_id = s.run_id
           WHERE s.tenant_id = :t GROUP BY s.sale_id, s.quantity HAVING sum(rl.quantity) > s.quantity""",
        {"t": tenant_id},
    )
    assert over == []
    failed_wrote = query(
        """SELECT j.id FROM jobs j JOIN ledger_events e ON e.tenant_id = j.tenant_id AND e.job_id = j.id
           WHERE j.tenant_id = :t AND j.status = 'failed'""",
        {"t": tenant_id},
    )
    assert failed_wrote == []


@settings(max_examples=examples(15), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories())
def test_returns_and_landed_costs_keep_the_books_exact(runner_env: tuple[Any, Any], history: Any) -> None:
    lots, sales, operations = history
    tenant_id = _tenant()
    submit_run_direct(tenant_id, sales[:3], lots)
    _drain(tenant_id, runner_env)
    extra = 0
    for op in operations:
        if op[0] == "run":  # a later run selling more (it may fail: not enough stock)
            extra += 1
            submit_run_direct(tenant_id, [sale(f"X{extra}", SKU, AT.format(op[3]), op[2])])
        else:
            _submit(tenant_id, op)
        if extra % 2 == 0:  # sometimes drain after each, sometimes let jobs queue up behind one another
            _drain(tenant_id, runner_env)
    _drain(tenant_id, runner_env)
    assert query(
        "SELECT count(*) FROM jobs WHERE tenant_id = :t AND status IN ('queued', 'running')", {"t": tenant_id}
    ) == [(0,)]
    _check_books(tenant_id)
