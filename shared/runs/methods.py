"""Which costing method a run uses and which method each SKU is held to (docs/costing.md).

- A run names its method (`mode`) or takes the tenant's default (`tenants.valuation_method`), resolved when
  it is accepted and recorded on the run.
- The first committed run that costs a SKU holds the SKU to its method (`sku_valuation_methods`). A later
  run with another method for the SKU fails with VALUATION_METHOD_MISMATCH, one error per SKU naming it and
  its method, and nothing is written.
- Switching a SKU is explicit and audited: from FIFO or LIFO at any time, value-neutral (both value each lot
  at its own cost, and a moving-average pool starts as the sum of those); from moving average at once when
  the pool's value equals its lots' own costs, e.g. when nothing is on hand. Otherwise the switch revalues
  stock on hand: refused (409 REVALUATION_REQUIRED) unless asked for with `revalue`, then accepted as a
  `revaluation` job that posts it under the tenant's fence (shared/runs/revaluation.py). A SKU not costed
  yet may be assigned a method the same way.

Moving average carries, per SKU, what its pool holds beyond its live lots' quantity x unit cost (the
rounding of earlier issues at the average): the sum of the SKU's ledger amounts less its lots' own value;
and the unit cost in force, read from the SKU's latest costed ISSUE (so several runs cost as one would).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.audit import service as audit
from shared.auth import Principal
from shared.base import utcnow
from shared.costing import Method
from shared.costing.common import round_half_even
from shared.costing.fifo import RowError, SalesBatch
from shared.decimals import AMOUNT_SCALE, COST_SCALE, QTY_SCALE
from shared.errors import (
    REVALUATION_REQUIRED,
    VALUATION_METHOD_MISMATCH,
    Conflict,
    NotFound,
    ValidationFailed,
)
from shared.jobs import service as jobs
from shared.jobs.kinds import JobKind
from shared.jobs.models import Job
from shared.jobs.service import AcceptedJob
from shared.pagination import page
from shared.runs.csvio import parse_sales_csv, sales_from_records
from shared.runs.models import SkuValuationMethod
from shared.runs.schemas import RevaluationPayload
from shared.tenants.models import Tenant

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def default_method(session: Session, tenant_id: str) -> Method:
    method = session.scalar(select(Tenant.valuation_method).where(Tenant.id == tenant_id))
    return Method(method or Method.FIFO)


def held_methods(session: Session, tenant_id: str, skus: list[str]) -> dict[str, str]:
    """The method each of these SKUs is held to (SKUs not costed yet are absent); the rows are share-locked so
    an explicit switch waits for the run that read them."""
    rows = session.execute(
        text("""SELECT sku, method FROM sku_valuation_methods WHERE tenant_id = :t AND sku = ANY(:skus)
                FOR SHARE"""),
        {"t": tenant_id, "skus": skus},
    ).all()
    return {row[0]: row[1] for row in rows}


def _mismatch(row: int, sku: str, held: str, method: str) -> RowError:
    return RowError(
        row=row,
        field="sku",
        reason=VALUATION_METHOD_MISMATCH,
        message=(
            f"SKU '{sku}' is costed under {held}; this run uses {method}. Switch the SKU explicitly first "
            f"(PUT /valuation-methods/{sku})"
        ),
        file="sales",
    )


def mismatches(session: Session, tenant_id: str, sb: SalesBatch, method: Method) -> list[RowError]:
    """One error per sold SKU held to another method, at the SKU's first sale row."""
    held = held_methods(session, tenant_id, sorted(set(sb.sku)))
    first_row: dict[str, int] = {}
    for i, sku in enumerate(sb.sku):
        if sku in held and held[sku] != method and sku not in first_row:
            first_row[sku] = int(sb.row[i])
    return [_mismatch(row, sku, held[sku], method) for sku, row in first_row.items()]


def refuse_mismatches_at_intake(
    session: Session,
    tenant_id: str,
    method: Method,
    sales: tuple[Literal["csv", "json"], bytes],
    *,
    held_to_other: bool,
) -> None:
    """Refuse a run now (422 VALIDATION_FAILED, VALUATION_METHOD_MISMATCH, the worker's errors) when it sells a
    SKU held to another method. The sales are read only when the tenant holds some SKU to another method than
    the run's (`held_to_other`, which intake reads with the run's other terms). The worker checks again: a switch
    can land before the run executes."""
    if not held_to_other:
        return
    fmt, blob = sales
    try:
        parsed = parse_sales_csv(io.BytesIO(blob)) if fmt == "csv" else sales_from_records(json.loads(blob))
    except (ValidationFailed, ValueError):
        return  # input the run job refuses as a whole: it says so with the job's error
    if errors := mismatches(session, tenant_id, parsed.batch, method):
        more = f" (and {len(errors) - 1} more SKUs)" if len(errors) > 1 else ""
        raise ValidationFailed(
            errors[0].message + more, reason=VALUATION_METHOD_MISMATCH, details=[e.as_dict() for e in errors]
        )


def record(session: Session, tenant_id: str, run_id: str, method: Method) -> None:
    """Hold the run's SKUs not held yet to its method; a SKU switched meanwhile to another fails the run."""
    session.execute(
        text("""
        INSERT INTO sku_valuation_methods (tenant_id, sku, method, since_run_id)
        SELECT tenant_id, sku, :m, run_id FROM run_skus WHERE tenant_id = :t AND run_id = :r
        ON CONFLICT (tenant_id, sku) DO NOTHING"""),
        {"t": tenant_id, "r": run_id, "m": method.value},
    )
    other = session.execute(
        text("""
        SELECT v.sku, v.method FROM sku_valuation_methods v JOIN run_skus s ON s.tenant_id = v.tenant_id
        AND s.sku = v.sku WHERE v.tenant_id = :t AND s.run_id = :r AND v.method <> :m ORDER BY v.sku"""),
        {"t": tenant_id, "r": run_id, "m": method.value},
    ).all()
    if other:
        errors = [_mismatch(0, sku, held, method) for sku, held in other]
        raise ValidationFailed(
            errors[0].message, reason=VALUATION_METHOD_MISMATCH, details=[e.as_dict() for e in errors]
        )


def carried_values(session: Session, tenant_id: str, skus: list[str]) -> dict[str, Decimal]:
    """Per SKU: the sum of its ledger amounts less its live lots' remaining quantity x unit cost (non-zero
    only). Zero for a SKU only ever costed FIFO or LIFO; a moving-average pool's rounding otherwise."""
    if not skus:
        return {}
    rows = session.execute(
        text("""
        WITH ledger AS (
            SELECT sku, sum(amount) AS value FROM ledger_events WHERE tenant_id = :t AND sku = ANY(:skus)
            GROUP BY sku
        ), held AS (
            SELECT sku, sum(remaining_quantity * unit_cost) AS value FROM lots
            WHERE tenant_id = :t AND status = 'live' AND remaining_quantity <> 0 AND sku = ANY(:skus)
            GROUP BY sku
        )
        SELECT ledger.sku, ledger.value - coalesce(held.value, 0) FROM ledger LEFT JOIN held USING (sku)
        WHERE ledger.value - coalesce(held.value, 0) <> 0"""),
        {"t": tenant_id, "skus": skus},
    ).all()
    return {row[0]: Decimal(row[1]) for row in rows}


def opening_values(session: Session, tenant_id: str, sb: SalesBatch) -> dict[str, int]:
    """The moving-average engine's `opening`: each sold SKU's carried value, scaled 10**8."""
    carried = carried_values(session, tenant_id, sorted(set(sb.sku)))
    return {sku: int(value.scaleb(AMOUNT_SCALE)) for sku, value in carried.items()}


def pool_averages(session: Session, tenant_id: str, sb: SalesBatch) -> dict[str, tuple[int, int]]:
    """The moving-average engine's `averages`: per sold SKU whose latest costed sale was costed at the moving
    average, the unit cost of that sale (its first ISSUE slice: the pool's average, never the remainder of an
    emptying sale unless the pool was emptied) and its instant in µs since the epoch. A repost that re-costed
    the sale carries its new average on its live COST_ADJUSTMENTs (shared/runs/repost.py): the latest of those
    wins over the ISSUE at the same instant."""
    return _averages_in_force(session, tenant_id, sorted(set(sb.sku)))


def _averages_in_force(session: Session, tenant_id: str, skus: list[str]) -> dict[str, tuple[int, int]]:
    rows = session.execute(
        text("""
        SELECT DISTINCT ON (e.sku) e.sku, e.unit_cost, r.mode, e.occurred_at
        FROM ledger_events e JOIN runs r ON r.tenant_id = :t AND r.id = e.run_id
        WHERE e.tenant_id = :t AND e.sku = ANY(:skus) AND r.status = 'completed' AND NOT r.dry_run
          AND (e.event_type = 'ISSUE' OR (e.event_type = 'COST_ADJUSTMENT' AND EXISTS (
               SELECT 1 FROM repost_runs p WHERE p.tenant_id = :t AND p.run_id = e.run_id
               AND p.job_id = e.job_id AND p.reversed_by IS NULL AND e.seq BETWEEN p.first_seq AND p.last_seq)))
        ORDER BY e.sku, e.occurred_at DESC, e.event_type = 'COST_ADJUSTMENT' DESC,
                 CASE WHEN e.event_type = 'ISSUE' THEN e.seq ELSE -e.seq END"""),
        {"t": tenant_id, "skus": skus},
    ).all()
    return {
        sku: (int(Decimal(cost).scaleb(COST_SCALE)), (at - _EPOCH) // timedelta(microseconds=1))
        for sku, cost, mode, at in rows
        if mode == Method.MOVING_AVERAGE
    }


@dataclass(frozen=True)
class Pool:
    """A moving-average SKU's pool now, every bin: quantity (10**-4), value (10**-8) and the unit cost in force
    (10**-4; None when the pool is empty)."""

    quantity: int
    value: int
    average: int | None


def moving_average_pools(session: Session, tenant_id: str, skus: list[str]) -> dict[str, Pool]:
    """The pools of those of `skus` held to moving average, as the next run would find them: the live lots'
    stock plus the carried value, and the unit cost in force: the average last used (`averages`) while no lot
    came in after it, else the pool's value over its quantity, rounded half-even to 10**-4 (docs/costing.md).
    The SKUs' methods are share-locked, like a run's."""
    held = held_methods(session, tenant_id, skus)
    ma = sorted(sku for sku, method in held.items() if method == Method.MOVING_AVERAGE)
    if not ma:
        return {}
    rows = session.execute(
        text("""
        SELECT sku, sum(remaining_quantity), sum(remaining_quantity * unit_cost), max(received_at) FROM lots
        WHERE tenant_id = :t AND status = 'live' AND remaining_quantity > 0 AND sku = ANY(:skus) GROUP BY sku"""),
        {"t": tenant_id, "skus": ma},
    ).all()
    stock = {sku: (q, v, at) for sku, q, v, at in rows}
    carried = carried_values(session, tenant_id, ma)
    in_force = _averages_in_force(session, tenant_id, ma)
    pools: dict[str, Pool] = {}
    for sku in ma:
        q, v, latest = stock.get(sku, (Decimal(0), Decimal(0), None))
        quantity = int(Decimal(q).scaleb(QTY_SCALE))
        value = int((Decimal(v) + carried.get(sku, Decimal(0))).scaleb(AMOUNT_SCALE))
        average: int | None = None
        if quantity:
            cost, used_at = in_force.get(sku, (0, None))
            latest_us = (latest - _EPOCH) // timedelta(microseconds=1)
            average = cost if used_at is not None and latest_us <= used_at else round_half_even(value, quantity)
        pools[sku] = Pool(quantity, value, average)
    return pools


def set_default_method(session: Session, tenant_id: str, method: Method, *, actor: Principal | None) -> Tenant:
    """The method of runs accepted from now on that name none; runs already accepted keep theirs."""
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"tenant '{tenant_id}' not found")
    previous = tenant.valuation_method
    tenant.valuation_method = method.value
    session.flush()
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="tenant.valuation_method_changed",
        target=tenant_id,
        outcome="ok",
        details={"method": method.value, "previous_method": previous},
    )
    return tenant


@dataclass(frozen=True)
class RevaluationAccepted:
    """A switch that needs a revaluation, accepted as a `revaluation` job (shared/runs/revaluation.py)."""

    job: AcceptedJob
    sku: str
    method: Method
    previous_method: str | None
    carried_value: Decimal


def switch_sku(
    session: Session,
    tenant_id: str,
    sku: str,
    method: Method,
    *,
    actor: Principal | None,
    revalue: bool = False,
    request_id: str | None = None,
) -> dict[str, Any] | RevaluationAccepted:
    """Hold `sku` to `method` from now on (rule in the module docstring); audited. A switch away from moving
    average whose pool carries value is refused without `revalue`, and accepted as a `revaluation` job with it:
    only the worker writes the ledger, under the tenant's fence."""
    known = session.scalar(
        text("SELECT 1 FROM items WHERE tenant_id = :t AND sku = :sku AND deleted_at IS NULL"),
        {"t": tenant_id, "sku": sku},
    )
    if not known:
        raise NotFound(f"SKU '{sku}' is not an item of this tenant")
    current = session.scalar(
        select(SkuValuationMethod)
        .where(SkuValuationMethod.tenant_id == tenant_id, SkuValuationMethod.sku == sku)
        .with_for_update()
    )
    previous = current.method if current else None
    if previous == Method.MOVING_AVERAGE and method != Method.MOVING_AVERAGE:
        carried = carried_values(session, tenant_id, [sku]).get(sku, Decimal(0))
        if carried and not revalue:
            raise Conflict(
                f"SKU '{sku}' holds {format(carried, 'f')} of value under moving average beyond its lots' own "
                f'costs; switching to {method} revalues stock on hand. Ask for it with "revalue": true '
                "(asora valuation switch --revalue), or issue or count the SKU down to zero first",
                reason=REVALUATION_REQUIRED,
                details=[{"sku": sku, "method": previous, "carried_value": format(carried, "f")}],
            )
        if carried:
            payload = RevaluationPayload(sku=sku, method=method.value, requested_at=utcnow())
            job = jobs.accept_job(
                session, tenant_id=tenant_id, kind=JobKind.REVALUATION, payload=payload.model_dump(mode="json"),
                actor=actor,
            )  # fmt: skip
            audit.record(
                session, tenant_id=tenant_id, actor=actor, action="sku.revaluation_accepted", target=sku,
                outcome="ok", request_id=request_id, job_id=job.id,
                details={"sku": sku, "method": method.value, "previous_method": previous,
                         "carried_value": format(carried, "f")},
            )  # fmt: skip
            return RevaluationAccepted(job, sku, method, previous, carried)
    return hold_sku(session, tenant_id, sku, method, previous, actor=actor, request_id=request_id)


def hold_sku(
    session: Session,
    tenant_id: str,
    sku: str,
    method: Method,
    previous: str | None,
    *,
    actor: Principal | None = None,
    job: Job | None = None,
    request_id: str | None = None,
    revalued: Decimal = Decimal(0),
) -> dict[str, Any]:
    """Write the SKU's method row and the audit record `sku.valuation_method_switched` (`revalued`: the amount a
    revaluation job posted, else 0)."""
    now = utcnow()
    session.execute(
        insert(SkuValuationMethod)
        .values(tenant_id=tenant_id, sku=sku, method=method.value, since_run_id=None, updated_at=now)
        .on_conflict_do_update(
            index_elements=["tenant_id", "sku"], set_={"method": method.value, "since_run_id": None, "updated_at": now}
        )
    )
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        actor_key_id=job.actor_key_id if job else None,
        actor_role=job.actor_role if job else None,
        action="sku.valuation_method_switched",
        target=sku,
        outcome="ok" if previous != method else "unchanged",
        request_id=request_id,
        job_id=job.id if job else None,
        details={"sku": sku, "method": method.value, "previous_method": previous, "revalued": format(revalued, "f")},
    )
    return {"sku": sku, "method": method.value, "previous_method": previous, "updated_at": now}


def list_methods(
    session: Session, tenant_id: str, *, limit: int, cursor: str | None
) -> tuple[list[SkuValuationMethod], str | None]:
    query = select(SkuValuationMethod).where(SkuValuationMethod.tenant_id == tenant_id)
    return page(session, query, SkuValuationMethod.sku, limit=limit, cursor=cursor)
