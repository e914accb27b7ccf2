"""Plan ceilings (contract section 3), enforced atomically.

A creation that counts against a ceiling first locks the tenant row (`lock_tenant`), then counts what
the tenant already has, then calls `check_limit`. Two concurrent creations at the ceiling therefore
serialize on the row lock and the second one counts the first: they cannot both pass. A plan change
updates the same row, so it serializes with creations too. Limits live in `plan_limits`, not in code.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from shared.base import table_of
from shared.errors import NotFound, PlanLimitExceeded
from shared.tenants.models import PlanLimit, Tenant

LIMIT_NAMES = ("items", "categories", "hubs", "bins", "vendors", "exports_per_month", "integrations", "rows_per_run")


def lock_tenant(session: Session, tenant_id: str) -> str:
    """Hold the tenant's row lock until the transaction ends; returns the tenant's current plan.
    FOR NO KEY UPDATE conflicts with itself and with plan changes, but not with the key-share locks that
    foreign keys to `tenants` take, so job intake is not held up."""
    plan = session.scalar(select(Tenant.plan).where(Tenant.id == tenant_id).with_for_update(key_share=True))
    if plan is None:
        raise NotFound(f"tenant '{tenant_id}' not found")
    return plan


_LIMITS, _TENANTS = table_of(PlanLimit), table_of(Tenant)
# Built once and sent on the session's connection: every JSON run's intake asks it (`rows_per_run`).
_LIMIT_FOR = (
    select(_LIMITS.c.maximum)
    .join(_TENANTS, _TENANTS.c.plan == _LIMITS.c.plan)
    .where(_TENANTS.c.id == bindparam("tenant_id"), _LIMITS.c.limit_name == bindparam("limit_name"))
)


def limit_for(session: Session, tenant_id: str, limit_name: str) -> int | None:
    """The tenant's ceiling for `limit_name` under its current plan; None means unlimited."""
    if limit_name not in LIMIT_NAMES:
        raise ValueError(f"unknown plan limit {limit_name!r}")
    maximum: int | None = (
        session.connection().execute(_LIMIT_FOR, {"tenant_id": tenant_id, "limit_name": limit_name}).scalar()
    )
    return maximum


def check_limit(
    session: Session,
    tenant_id: str,
    limit_name: str,
    used: int,
    adding: int = 1,
    *,
    reason: str = "PLAN_LIMIT_EXCEEDED",
) -> None:
    """Refuse with 402 PLAN_LIMIT_EXCEEDED when `used + adding` would pass the ceiling. Call it after
    `lock_tenant` and after counting `used` in the same transaction. The one plan-ceiling check: every
    resource with a ceiling (master data, exports, integrations) goes through it."""
    maximum = limit_for(session, tenant_id, limit_name)
    if maximum is None or used + adding <= maximum:
        return
    raise PlanLimitExceeded(
        f"the plan allows {maximum} {limit_name}; the tenant has {used}",
        reason=reason,
        details=[
            {
                "limit": limit_name,
                "used": used,
                "max": maximum,
                "message": f"the plan's ceiling for {limit_name} is reached; upgrade the plan to add more",
            }
        ],
    )


def check_size(session: Session, tenant_id: str, limit_name: str, size: int, *, what: str) -> None:
    """Refuse with 402 PLAN_LIMIT_EXCEEDED one request larger than the plan's ceiling for `limit_name` (a
    per-request ceiling, such as a run's rows: nothing is counted or locked). `what` names the thing measured."""
    refuse_oversize(limit_for(session, tenant_id, limit_name), limit_name, size, what=what)


def refuse_oversize(maximum: int | None, limit_name: str, size: int, *, what: str) -> None:
    """`check_size` with the ceiling already read (a caller that reads it with other terms in one statement)."""
    if maximum is None or size <= maximum:
        return
    raise PlanLimitExceeded(
        f"the plan allows {maximum} {what}; this one has {size}",
        reason="PLAN_LIMIT_EXCEEDED",
        details=[
            {
                "limit": limit_name,
                "used": size,
                "max": maximum,
                "message": f"at most {maximum} {what} on this plan; split the input or upgrade the plan",
            }
        ],
    )
