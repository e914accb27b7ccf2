"""The run and rollback jobs, executed inside the tenant's fenced transaction: each reads its job, calls the
stages (`checks`, `writes`, `rollback`) and mirrors the job's status onto the run.

A run parses its stored inputs, checks them against the tenant's state and allocates, then writes lots,
ledger events and per-sale results in one transaction. Any problem fails the run with every validation
error recorded, and nothing else written.
"""

from __future__ import annotations

import io
import json
from datetime import datetime
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.orm import Session

from shared import costing
from shared.base import utcnow
from shared.decimals import AMOUNT_SCALE, QTY_SCALE, to_decimal
from shared.errors import DomainError
from shared.integrations import events
from shared.integrations.models import EventName
from shared.jobs import service as jobs
from shared.jobs.handlers import carry
from shared.jobs.kinds import JobStatus
from shared.jobs.models import Job
from shared.runs import backdating, checks, methods, repost, revaluation, writes
from shared.runs import service as runs
from shared.runs.csvio import (
    ParsedLots,
    ParsedSales,
    lots_from_records,
    parse_lots_csv,
    parse_sales_csv,
    sales_from_records,
)
from shared.runs.models import Run, RunStatus
from shared.runs.rollback import reverse_run


def _run_of(session: Session, job: Job) -> Run:
    """The job's run, by primary key: a second call in one transaction is answered from the session."""
    run = session.get(Run, job.payload["run_id"])
    assert run is not None, f"job {job.id} has no run"
    assert run.job_id == job.id, f"run {run.id} belongs to job {run.job_id}, not {job.id}"
    return run


def _start_run(session: Session, job: Job, now: datetime) -> Run:
    """Mark the job's run running (its first start kept) and load it, in one statement."""
    started = (
        update(Run)
        .where(Run.id == job.payload["run_id"], Run.job_id == job.id)
        .values(status=RunStatus.RUNNING, started_at=func.coalesce(Run.started_at, now))
        .returning(Run)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    run = session.scalars(started).one_or_none()
    assert run is not None, f"job {job.id} has no run"
    return run


def _inputs(session: Session, job: Job) -> dict[str, tuple[str, bytes]]:
    """The job's uploaded inputs (`sales`, and `lots` when given): name -> (format, bytes), in one query."""
    formats: dict[str, str] = job.payload["inputs"]
    blobs = jobs.read_blobs(session, job.id, list(formats))
    return {name: (fmt, blobs.get(name, b"")) for name, fmt in formats.items()}


def _parse_sales(fmt: str, blob: bytes) -> ParsedSales:
    return parse_sales_csv(io.BytesIO(blob)) if fmt == "csv" else sales_from_records(json.loads(blob))


def _parse_lots(fmt: str, blob: bytes) -> ParsedLots:
    return parse_lots_csv(io.BytesIO(blob)) if fmt == "csv" else lots_from_records(json.loads(blob))


class CogsRun:
    def status_changed(self, session: Session, job: Job, error: DomainError | None = None) -> None:
        if job.status == JobStatus.COMPLETED:
            return  # `execute` has set the run's outcome
        now = utcnow()
        if job.status == JobStatus.RUNNING:  # claimed: one UPDATE ... RETURNING, and its execution keeps the row
            carry(session, _start_run(session, job, now))
            return
        run = _run_of(session, job)
        if job.status == JobStatus.QUEUED:
            run.status = RunStatus.QUEUED
        elif job.status == JobStatus.FAILED:
            run.status, run.finished_at, run.error = RunStatus.FAILED, now, job.error
            errors = error.errors if isinstance(error, checks.RunValidationFailed) else []
            run.validation_errors_count = len(errors)
            if errors:
                writes.record_validation_errors(session, run, errors)

    def execute(self, session: Session, job: Job) -> dict[str, Any]:
        run = _run_of(session, job)
        inputs = _inputs(session, job)
        assert "sales" in inputs, f"job {job.id} has no sales"
        sales = _parse_sales(*inputs["sales"])
        lots = _parse_lots(*inputs["lots"]) if "lots" in inputs else None
        if any(fmt == "csv" for fmt, _ in inputs.values()):  # a JSON run's rows were held to the plan at intake
            runs.check_rows(session, job.tenant_id, sales.row_count + (lots.row_count if lots else 0))
        run.sales_count, run.lots_count = len(sales.batch), len(lots.batch) if lots else 0
        method = costing.Method(run.mode)
        with session.no_autoflush:  # the counts go out with the run's outcome, not in an UPDATE of their own
            checked = checks.check_run(session, job.tenant_id, sales, lots, method, held_to_method=not run.dry_run)
        repost_job = None
        run.total_quantity = to_decimal(checked.result.total_quantity, QTY_SCALE)
        run.total_cogs = to_decimal(checked.result.total_cogs, AMOUNT_SCALE)
        if run.dry_run:
            writes.write_dry_run(session, run, checked)
            run.status = RunStatus.VALIDATED
        else:
            writes.write_run(session, job, run, checked)
            methods.record(session, job.tenant_id, run.id, method)
            run.status = RunStatus.COMPLETED
            run.completed_seq = job.seq
            repost_job = backdating.queue_repost(session, job.tenant_id, checked.repost, cause=job.id)
        run.finished_at = utcnow()
        run.error = None
        result = {
            "run_id": run.id,
            "status": run.status,
            "sales": len(checked.sales),
            "total_cogs": format(run.total_cogs, "f"),
            "total_quantity": format(run.total_quantity, "f"),
        }
        if not run.dry_run and repost_job is not None:
            result["repost_job_id"] = repost_job.id
        if not run.dry_run:
            summary = {
                **result,
                "job_id": job.id,
                "lots": run.lots_count,
                "first_seq": run.first_seq,
                "last_seq": run.last_seq,
            }
            events.emit(session, job.tenant_id, EventName.RUN_COMPLETED, summary)
        return result


class Rollback:
    def status_changed(self, session: Session, job: Job, error: DomainError | None = None) -> None:
        """A rollback job has no domain row of its own; the runs it reverses change in `execute`."""

    def execute(self, session: Session, job: Job) -> dict[str, Any]:
        run = runs.get_run(session, job.tenant_id, job.payload["run_id"])
        chosen = runs.rollback_set(session, run, cascade=bool(job.payload.get("cascade")))
        for target in chosen:
            reverse_run(session, job, target)
            reversed_run = {
                "run_id": target.id,
                "job_id": job.id,
                "requested_for": run.id,
                "total_cogs": format(target.total_cogs, "f"),
                "total_quantity": format(target.total_quantity, "f"),
            }
            events.emit(session, job.tenant_id, EventName.RUN_ROLLED_BACK, reversed_run)
        return {"run_id": run.id, "rolled_back": [r.id for r in chosen]}


class Repost:
    """Re-cost the sales of SKUs a backdated entry changed (`shared/runs/repost.py`), or, with `reverse_job_id`
    in the payload, reverse an earlier repost. Its outcome is the job's result."""

    def status_changed(self, session: Session, job: Job, error: DomainError | None = None) -> None:
        """Nothing to mirror: a repost is its job, its ledger events and its repost_runs rows."""

    def execute(self, session: Session, job: Job) -> dict[str, Any]:
        if "reverse_job_id" in job.payload:
            return repost.reverse_repost(session, job)
        return repost.execute_repost(session, job)


class Revaluation:
    """A switch away from moving average with `revalue` (shared/runs/revaluation.py); its status is its job's."""

    def status_changed(self, session: Session, job: Job, error: DomainError | None = None) -> None:
        """Nothing to mirror."""

    def execute(self, session: Session, job: Job) -> dict[str, Any]:
        result = revaluation.post_revaluation(session, job)
        if result["first_seq"] is not None:
            events.emit(session, job.tenant_id, EventName.SKU_REVALUED, {"job_id": job.id, **result})
        return result
