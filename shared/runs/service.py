"""COGS runs: accepting them, reading their results, and deciding whether a rollback may proceed."""

from __future__ import annotations

import json
from typing import Any, Literal

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from shared import db
from shared.audit import service as audit
from shared.auth import Principal
from shared.base import new_id
from shared.costing import Method
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.jobs import service as jobs
from shared.jobs.kinds import JobKind
from shared.jobs.service import AcceptedJob
from shared.ledger import queries
from shared.ledger.models import EventType, LedgerEvent
from shared.pagination import page
from shared.runs import methods
from shared.runs.models import IN_PROGRESS, Run, RunAllocation, RunSale, RunStatus, RunValidationError
from shared.tenants import plans

InputFormat = Literal["csv", "json"]
ROWS_PER_RUN = "rows per run (sales and lots together)"
# What intake needs to know of the tenant before it accepts a run, in one round trip: its default method, its
# plan's `rows_per_run` ceiling (NULL: unlimited), and whether it holds any SKU to a method other than the run's.
_RUN_TERMS = text("""
SELECT t.valuation_method,
       (SELECT l.maximum FROM plan_limits l WHERE l.plan = t.plan AND l.limit_name = 'rows_per_run'),
       EXISTS (SELECT FROM sku_valuation_methods v
               WHERE v.tenant_id = t.id AND v.method <> coalesce(CAST(:mode AS text), t.valuation_method))
FROM tenants t WHERE t.id = :t""")


def submit_run(
    session: Session,
    *,
    tenant_id: str,
    actor: Principal,
    dry_run: bool,
    mode: str | None,
    sales: tuple[InputFormat, bytes],
    lots: tuple[InputFormat, bytes] | None,
    sales_count_hint: int | None = None,
    rows: int | None = None,
) -> tuple[str, AcceptedJob]:
    """Record the run, its inputs and its audit event, then accept its job (numbered last: shared/jobs);
    returns the run's id and the job. `rows` (sales and lots together), when the caller knows them (a JSON
    body), is held to the plan's `rows_per_run` here; CSV rows are counted and held to it by the run job. A run
    that names no `mode` takes the tenant's default method, resolved now and recorded on the run; a run that sells
    a SKU held to another method is refused now (shared/runs/methods.py)."""
    terms = session.execute(_RUN_TERMS, {"t": tenant_id, "mode": mode}).one_or_none()
    if terms is None:
        raise NotFound(f"tenant '{tenant_id}' not found")
    held, rows_max, held_to_other = terms
    if rows is not None:
        plans.refuse_oversize(rows_max, "rows_per_run", rows, what=ROWS_PER_RUN)
    method = Method(mode or held)
    if not dry_run:  # a dry run is a preview and may cost by another method
        methods.refuse_mismatches_at_intake(session, tenant_id, method, sales, held_to_other=held_to_other)
    mode = method.value
    run_id, job_id = new_id("run"), jobs.new_job_id()
    inputs: dict[str, str] = {"sales": sales[0]}
    if lots is not None:
        inputs["lots"] = lots[0]
    # Intake's hot path: the run, its inputs and its audit event are written by the job's numbering statement
    # (shared/jobs/service.py), so that the accept is one statement after the terms were read.
    run_row = db.Insert(
        "INSERT INTO runs (id, job_id, tenant_id, status, mode, dry_run, sales_count) VALUES (%({p}id)s,"
        " %({p}job_id)s, %({p}tenant_id)s, %({p}status)s, %({p}mode)s, %({p}dry_run)s, %({p}sales_count)s)",
        {
            "id": run_id,
            "job_id": job_id,
            "tenant_id": tenant_id,
            "status": str(RunStatus.QUEUED),
            "mode": mode,
            "dry_run": dry_run,
            "sales_count": sales_count_hint or 0,
        },
    )
    submitted = audit.insert(
        tenant_id=tenant_id,
        actor=actor,
        action="run.submitted",
        target=run_id,
        outcome="accepted",
        job_id=job_id,
        details={
            "dry_run": dry_run,
            "mode": mode,
            "inputs": inputs,
            "sizes": {"sales": len(sales[1]), "lots": len(lots[1]) if lots else 0},
        },
    )
    blobs = jobs.blobs_insert(tenant_id, job_id, {"sales": sales[1], **({"lots": lots[1]} if lots else {})})
    job = jobs.accept_job(
        session,
        tenant_id=tenant_id,
        kind=JobKind.COGS_RUN,
        actor=actor,
        job_id=job_id,
        payload={"run_id": run_id, "dry_run": dry_run, "mode": mode, "inputs": inputs},
        companions=(blobs, run_row, submitted),
    )
    return run_id, job


def check_rows(session: Session, tenant_id: str, rows: int) -> None:
    """A run may carry at most the plan's `rows_per_run` data rows, sales and lots together (402)."""
    plans.check_size(session, tenant_id, "rows_per_run", rows, what=ROWS_PER_RUN)


def records_blob(records: list[dict[str, Any]]) -> bytes:
    return json.dumps(records, separators=(",", ":")).encode()


def get_run(session: Session, tenant_id: str, run_id: str) -> Run:
    run = session.scalar(select(Run).where(Run.id == run_id, Run.tenant_id == tenant_id))
    if run is None:
        raise NotFound(f"run '{run_id}' not found")
    return run


def list_runs(
    session: Session, tenant_id: str, *, status: RunStatus | None, limit: int, cursor: str | None
) -> tuple[list[Run], str | None]:
    """The tenant's runs, newest first."""
    query = select(Run).where(Run.tenant_id == tenant_id)
    if status:
        query = query.where(Run.status == status)
    return page(session, query, Run.id, limit=limit, cursor=cursor, descending=True)


def list_sales(session: Session, run: Run, *, limit: int, cursor: str | None) -> tuple[list[RunSale], str | None]:
    query = select(RunSale).where(RunSale.run_id == run.id, RunSale.tenant_id == run.tenant_id)
    return page(session, query, RunSale.sale_id, limit=limit, cursor=cursor)


def list_allocations(
    session: Session, run: Run, *, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """A committed run's slices are its ISSUE ledger events; a dry run's were kept in run_allocations."""
    if run.dry_run:
        dry = select(RunAllocation).where(RunAllocation.run_id == run.id, RunAllocation.tenant_id == run.tenant_id)
        rows, next_cursor = page(session, dry, RunAllocation.position, limit=limit, cursor=cursor)
        items = [
            {
                "sale_id": r.sale_id,
                "lot_id": r.lot_id,
                "sku": r.sku,
                "quantity": r.quantity,
                "unit_cost": r.unit_cost,
                "amount": r.amount,
            }
            for r in rows
        ]
        return items, next_cursor
    issues = select(LedgerEvent).where(
        LedgerEvent.tenant_id == run.tenant_id,
        LedgerEvent.run_id == run.id,
        LedgerEvent.event_type == EventType.ISSUE,
        queries.seq_between(run.first_seq, run.last_seq),
    )
    events, next_cursor = page(session, issues, LedgerEvent.seq, limit=limit, cursor=cursor)
    items = [
        {
            "sale_id": e.reference,
            "lot_id": e.lot_id,
            "sku": e.sku,
            "quantity": -e.quantity,
            "unit_cost": e.unit_cost,
            "amount": -e.amount,
        }
        for e in events
    ]
    return items, next_cursor


def list_validation_errors(
    session: Session, run: Run, *, limit: int, cursor: str | None
) -> tuple[list[RunValidationError], str | None]:
    query = select(RunValidationError).where(
        RunValidationError.run_id == run.id, RunValidationError.tenant_id == run.tenant_id
    )
    return page(session, query, RunValidationError.position, limit=limit, cursor=cursor)


def require_finished(run: Run) -> None:
    if run.status in IN_PROGRESS:
        raise Conflict(f"run '{run.id}' is still {run.status}", reason="RUN_IN_PROGRESS")


def later_runs_sharing_skus(session: Session, tenant_id: str, run_ids: list[str], after_seq: int) -> list[str]:
    """Live runs completed after `after_seq` that consumed a SKU these runs sold or received."""
    rows = session.execute(
        text("""
            WITH skus AS (
                SELECT sku FROM run_skus WHERE tenant_id = :t AND run_id = ANY(:runs)
                UNION SELECT sku FROM lots WHERE tenant_id = :t AND source_run_id = ANY(:runs)
            )
            SELECT r.id FROM runs r
            WHERE r.tenant_id = :t AND r.status = 'completed' AND NOT r.dry_run AND r.completed_seq > :seq
              AND r.id <> ALL(:runs)
              AND EXISTS (SELECT 1 FROM run_skus s WHERE s.tenant_id = :t AND s.run_id = r.id
                          AND s.sku IN (SELECT sku FROM skus))
            ORDER BY r.completed_seq DESC
        """),
        {"t": tenant_id, "runs": run_ids, "seq": after_seq},
    )
    return [row[0] for row in rows]


def _held_by_later_costs(session: Session, tenant_id: str, run_ids: list[str]) -> dict[str, str]:
    """Runs whose ledger effects later returns, landed costs or revaluations (shared/returns, shared/landed_costs,
    shared/runs/revaluation.py) built on: a returned sale, a COGS adjustment on a sale, a lot it received that was
    revalued or sent back, or a SKU of it revalued on a switch away from moving average."""
    rows = session.execute(
        text("""
        SELECT rl.run_id, 'a sale of the run was returned' FROM return_lines rl
        WHERE rl.tenant_id = :t AND rl.run_id = ANY(:runs)
        UNION ALL
        SELECT lcl.run_id, 'a landed cost adjusted the COGS of its sales' FROM landed_cost_lines lcl
        WHERE lcl.tenant_id = :t AND lcl.run_id = ANY(:runs)
        UNION ALL
        SELECT l.source_run_id, 'a landed cost revalued a lot it received' FROM landed_costs c
        JOIN lots l ON l.tenant_id = c.tenant_id AND l.lot_id = c.lot_id
        WHERE c.tenant_id = :t AND l.source_run_id = ANY(:runs)
          AND EXISTS (SELECT FROM landed_cost_lines x WHERE x.tenant_id = :t AND x.landed_cost_id = c.id)
        UNION ALL
        SELECT l.source_run_id, 'units of a lot it received went back to the vendor' FROM return_lines rl
        JOIN lots l ON l.tenant_id = rl.tenant_id AND l.lot_id = rl.source_lot_id
        WHERE rl.tenant_id = :t AND rl.run_id IS NULL AND l.source_run_id = ANY(:runs)
        UNION ALL
        SELECT s.run_id, 'a later revaluation of its SKU (a switch away from moving average) built on it'
        FROM run_skus s JOIN runs r ON r.tenant_id = s.tenant_id AND r.id = s.run_id
        JOIN jobs j ON j.tenant_id = s.tenant_id AND j.kind = 'revaluation' AND j.status = 'completed'
             AND j.result ->> 'sku' = s.sku AND (j.result ->> 'first_seq')::bigint > r.completed_seq
        WHERE s.tenant_id = :t AND s.run_id = ANY(:runs)"""),
        {"t": tenant_id, "runs": run_ids},
    ).all()
    held: dict[str, str] = {}
    for run_id, why in rows:
        held.setdefault(run_id, why)
    return held


def rollback_set(session: Session, run: Run, *, cascade: bool) -> list[Run]:
    """The runs a rollback reverses, newest first. Without cascade, any later live run that consumed the
    same SKUs blocks it (409 ROLLBACK_BLOCKED naming them)."""
    if run.status in IN_PROGRESS:
        raise Conflict(f"run '{run.id}' is still {run.status}", reason="RUN_IN_PROGRESS")
    if run.status == RunStatus.ROLLED_BACK:
        raise Conflict(f"run '{run.id}' is already rolled back", reason="ALREADY_ROLLED_BACK")
    if run.status != RunStatus.COMPLETED or run.dry_run:
        raise ValidationFailed(
            f"run '{run.id}' is {run.status}; only a completed run can be rolled back", reason="NOT_ROLLBACKABLE"
        )
    assert run.completed_seq is not None
    chosen = [run.id]
    while True:
        later = later_runs_sharing_skus(session, run.tenant_id, chosen, run.completed_seq)
        if not later:
            break
        if not cascade:
            raise Conflict(
                f"later runs consumed stock of the same SKUs: {', '.join(later)}; roll them back first "
                "or use cascade=true",
                reason="ROLLBACK_BLOCKED",
                details=[{"run_id": rid, "message": "consumed stock of the same SKUs later"} for rid in later],
            )
        chosen.extend(later)
    if held := _held_by_later_costs(session, run.tenant_id, chosen):
        raise Conflict(
            f"later returns, landed costs or revaluations depend on run(s) {', '.join(sorted(held))}; a rollback "
            "would return units at a cost their lots no longer carry",
            reason="ROLLBACK_BLOCKED",
            details=[{"run_id": rid, "message": why} for rid, why in sorted(held.items())],
        )
    runs = list(session.scalars(select(Run).where(Run.id.in_(chosen), Run.tenant_id == run.tenant_id)))
    return sorted(runs, key=lambda r: r.completed_seq or 0, reverse=True)


def request_rollback(session: Session, *, tenant_id: str, actor: Principal, run_id: str, cascade: bool) -> AcceptedJob:
    run = get_run(session, tenant_id, run_id)
    if jobs.pending_with(session, tenant_id, JobKind.ROLLBACK, "run_id", run_id):
        raise Conflict(f"a rollback of run '{run_id}' is already queued", reason="RUN_IN_PROGRESS")
    rollback_set(session, run, cascade=cascade)  # refuse now what would be refused in the worker
    job_id = jobs.new_job_id()
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="run.rollback_requested",
        target=run_id,
        outcome="accepted",
        job_id=job_id,
        details={"cascade": cascade},
    )
    payload = {"run_id": run_id, "cascade": cascade}
    return jobs.accept_job(
        session, tenant_id=tenant_id, kind=JobKind.ROLLBACK, actor=actor, payload=payload, job_id=job_id
    )
