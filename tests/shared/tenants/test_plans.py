"""Plan ceilings on the service: the limits the database holds are the contract's table, for every plan and
every limit; `check_limit` refuses exactly past the ceiling (counting what is being added); and the tenant
row lock that orders creations answers with the plan in force."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.errors import NotFound, PlanLimitExceeded
from shared.tenants import plans
from shared.tenants import service as tenants
from shared.tenants.models import PlanLimit
from tests import factories

# Contract section 3; None = unlimited. A missing row would also read as unlimited, so the table is compared
# whole, not limit by limit.
CONTRACT: dict[str, dict[str, int | None]] = {
    "free": {
        "items": 100,
        "categories": 10,
        "hubs": 1,
        "bins": 10,
        "vendors": 5,
        "exports_per_month": 5,
        "integrations": 0,
        "rows_per_run": 10_000,
    },
    "pro": {
        "items": 10000,
        "categories": 500,
        "hubs": 10,
        "bins": 1000,
        "vendors": 500,
        "exports_per_month": 500,
        "integrations": 5,
        "rows_per_run": 1_000_000,
    },
    "enterprise": dict.fromkeys(plans.LIMIT_NAMES),
}


def test_the_stored_limits_are_the_contracts_table(db_session: Session) -> None:
    stored: dict[str, dict[str, int | None]] = {}
    for row in db_session.scalars(select(PlanLimit)):
        stored.setdefault(row.plan, {})[row.limit_name] = row.maximum
    assert stored == CONTRACT
    assert all(set(limits) == set(plans.LIMIT_NAMES) for limits in stored.values())


@pytest.mark.parametrize("plan", list(CONTRACT))
def test_limit_for_reads_the_tenants_current_plan(db_session: Session, plan: str) -> None:
    tenant_id = factories.tenant(db_session, plan="free" if plan != "free" else "pro")
    tenants.change_plan(db_session, tenant_id, plan, actor=None)
    assert {name: plans.limit_for(db_session, tenant_id, name) for name in plans.LIMIT_NAMES} == CONTRACT[plan]


def test_an_unknown_limit_name_is_a_programming_error(db_session: Session) -> None:
    tenant_id = factories.tenant(db_session)
    with pytest.raises(ValueError, match="unknown plan limit"):
        plans.limit_for(db_session, tenant_id, "item")


@pytest.mark.parametrize(
    ("limit", "used", "adding", "allowed"),
    [
        ("hubs", 0, 1, True),
        ("hubs", 1, 1, False),
        ("hubs", 0, 2, False),
        ("exports_per_month", 4, 1, True),
        ("exports_per_month", 3, 2, True),
        ("exports_per_month", 3, 3, False),
        ("exports_per_month", 5, 1, False),
        ("integrations", 0, 1, False),
        ("items", 100, 0, True),  # nothing added: at the ceiling is not past it
    ],
)
def test_check_limit_refuses_exactly_past_the_ceiling(
    db_session: Session, limit: str, used: int, adding: int, allowed: bool
) -> None:
    tenant_id = factories.tenant(db_session, plan="free")
    if allowed:
        plans.check_limit(db_session, tenant_id, limit, used, adding)
        return
    with pytest.raises(PlanLimitExceeded) as refused:
        plans.check_limit(db_session, tenant_id, limit, used, adding)
    error = refused.value
    assert (error.status_code, error.code, error.reason) == (402, "PLAN_LIMIT_EXCEEDED", "PLAN_LIMIT_EXCEEDED")
    detail = error.details[0]
    assert (detail["limit"], detail["used"], detail["max"]) == (limit, used, CONTRACT["free"][limit])


def test_check_limit_carries_the_callers_reason_and_enterprise_has_no_ceiling(db_session: Session) -> None:
    free = factories.tenant(db_session, plan="free")
    with pytest.raises(PlanLimitExceeded) as refused:
        plans.check_limit(db_session, free, "exports_per_month", 5, reason="EXPORTS_PER_MONTH")
    assert refused.value.reason == "EXPORTS_PER_MONTH"
    enterprise = factories.tenant(db_session, plan="enterprise")
    plans.check_limit(db_session, enterprise, "hubs", 10**12, 10**6)


def test_lock_tenant_answers_the_plan_in_force_and_refuses_an_unknown_tenant(db_session: Session) -> None:
    tenant_id = factories.tenant(db_session, plan="pro")
    assert plans.lock_tenant(db_session, tenant_id) == "pro"
    tenants.change_plan(db_session, tenant_id, "free", actor=None)
    assert plans.lock_tenant(db_session, tenant_id) == "free"
    with pytest.raises(NotFound):
        plans.lock_tenant(db_session, factories.new_tenant_id())
