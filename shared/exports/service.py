"""Exports: accepting one (permission aside: the plan's monthly ceiling and "no data for scope"), rendering
it to a deterministic CSV in the worker, and reading it back.

Determinism: the same report, parameters and ledger state give byte-identical content and the same file
name. Columns are the report's fields in a fixed order, rows are in the report's documented order, decimals
have a fixed number of places, text is UTF-8 without a byte-order mark, lines end with "\\n", and absent
values are empty fields. The file name is `{tenant}_{report}_{params hash}_{ledger seq}.csv`, where the hash
is the SHA-256 of the canonical parameters (only those given, canonical spelling, sorted keys) and the
ledger seq is the tenant's last ledger event when the export was rendered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from shared import csvsafe
from shared.audit import service as audit
from shared.auth import Principal
from shared.base import new_id, utcnow
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.exports.models import Export, ExportStatus
from shared.jobs import service as jobs
from shared.jobs.kinds import JobKind
from shared.jobs.models import Job
from shared.jobs.service import AcceptedJob
from shared.pagination import page
from shared.reports import service as reports
from shared.reports.schemas import COLUMNS, ROW_MODELS, ReportParams, parse_params
from shared.tenants import plans
from shared.tenants.models import LedgerHead

EXPORTS_LIMIT = "exports_per_month"
MEDIA_TYPE = "text/csv; charset=utf-8"
# The first instant of the current calendar month, UTC, whatever the session's time zone.
MONTH_START = text("timezone('UTC', date_trunc('month', timezone('UTC', now())))")


def params_digest(params: dict[str, Any]) -> str:
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def stable_filename(tenant_id: str, report: str, params_hash: str, ledger_seq: int) -> str:
    return f"{tenant_id}_{report}_{params_hash[:12]}_{ledger_seq}.csv"


def text_columns(report: str) -> frozenset[str]:
    """The report's text columns (ids and names): plain `str` fields, unlike the decimal strings, which carry
    a pattern, and the counts."""
    fields = ROW_MODELS[report].model_fields
    return frozenset(
        name
        for name, field in fields.items()
        if field.annotation in (str, str | None) and not any(getattr(m, "pattern", None) for m in field.metadata)
    )


def render_csv(report: str, rows: Sequence[dict[str, Any]]) -> bytes:
    """The export's bytes; text cells that a spreadsheet would run as a formula are neutralised
    (shared/csvsafe.py)."""
    columns = COLUMNS[report]
    text = text_columns(report)
    return csvsafe.csv_bytes(
        columns,
        ([("" if row[c] is None else str(row[c])) for c in columns] for row in rows),
        [i for i, c in enumerate(columns) if c in text],
    )


def exports_this_month(session: Session, tenant_id: str) -> int:
    """Exports that count against the plan: every export requested this calendar month (UTC) that did not
    fail (a failed export produced nothing)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(Export)
            .where(
                Export.tenant_id == tenant_id, Export.created_at >= MONTH_START, Export.status != ExportStatus.FAILED
            )
        )
        or 0
    )


def check_plan_limit(session: Session, tenant_id: str) -> None:
    """Refuse an export past the plan's monthly ceiling. The tenant's row stays locked until the request
    commits (`plans.lock_tenant`), so two concurrent requests cannot both take the last export."""
    plans.lock_tenant(session, tenant_id)
    plans.check_limit(
        session, tenant_id, EXPORTS_LIMIT, exports_this_month(session, tenant_id), reason="EXPORTS_PER_MONTH"
    )


def _no_data(report: str) -> ValidationFailed:
    return ValidationFailed(
        f"the {report} report has no rows for these parameters",
        reason="NO_DATA",
        details=[{"field": "params", "message": "no data for scope"}],
    )


def request_export(
    session: Session, *, tenant_id: str, actor: Principal, report: str, params: ReportParams
) -> tuple[Export, AcceptedJob]:
    check_plan_limit(session, tenant_id)
    if not reports.has_rows(session, tenant_id, report, params):
        raise _no_data(report)
    export_id, job_id = new_id("exp"), jobs.new_job_id()
    canonical = params.canonical()
    export = Export(
        id=export_id,
        tenant_id=tenant_id,
        job_id=job_id,
        report=report,
        params=canonical,
        params_hash=params_digest(canonical),
        status=ExportStatus.QUEUED,
    )
    session.add(export)
    session.flush()
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="export.requested",
        target=export_id,
        outcome="accepted",
        job_id=job_id,
        details={"report": report, "params": canonical},
    )
    payload = {"export_id": export_id}
    job = jobs.accept_job(
        session, tenant_id=tenant_id, kind=JobKind.EXPORT, actor=actor, payload=payload, job_id=job_id
    )
    return export, job


def export_of_job(session: Session, job: Job) -> Export:
    export = session.scalar(select(Export).where(Export.job_id == job.id, Export.tenant_id == job.tenant_id))
    assert export is not None, f"job {job.id} has no export"
    return export


def render_export(session: Session, export: Export) -> dict[str, Any]:
    """Render and store the file. Runs in the tenant's fenced job transaction, so the ledger cannot move
    between the report query and the ledger seq read here."""
    result = reports.run_report(session, export.tenant_id, export.report, parse_params(export.report, export.params))
    if not result.rows:
        raise _no_data(export.report)
    content = render_csv(export.report, result.rows)
    ledger_seq = int(session.scalar(select(LedgerHead.seq).where(LedgerHead.tenant_id == export.tenant_id)) or 0)
    export.content = content
    export.size = len(content)
    export.sha256 = hashlib.sha256(content).hexdigest()
    export.row_count = len(result.rows)
    export.ledger_seq = ledger_seq
    export.filename = stable_filename(export.tenant_id, export.report, export.params_hash, ledger_seq)
    export.status = ExportStatus.COMPLETED
    export.error = None
    export.finished_at = utcnow()
    return {
        "export_id": export.id,
        "report": export.report,
        "filename": export.filename,
        "sha256": export.sha256,
        "row_count": export.row_count,
    }


def get_export(session: Session, tenant_id: str, export_id: str) -> Export:
    export = session.scalar(select(Export).where(Export.id == export_id, Export.tenant_id == tenant_id))
    if export is None:
        raise NotFound(f"export '{export_id}' not found")
    return export


def list_exports(
    session: Session, tenant_id: str, *, limit: int, cursor: str | None
) -> tuple[list[Export], str | None]:
    """The tenant's export history, newest first."""
    return page(
        session,
        select(Export).where(Export.tenant_id == tenant_id),
        Export.id,
        limit=limit,
        cursor=cursor,
        descending=True,
    )


def export_content(session: Session, tenant_id: str, export_id: str) -> tuple[Export, bytes]:
    export = get_export(session, tenant_id, export_id)
    if export.status == ExportStatus.FAILED:
        raise ValidationFailed(
            f"export '{export_id}' failed; it has no file", reason="EXPORT_FAILED", details=[export.error or {}]
        )
    if export.status != ExportStatus.COMPLETED or export.content is None:
        raise Conflict(f"export '{export_id}' is still {export.status}", reason="EXPORT_NOT_READY")
    return export, export.content
