"""COGS runs: intake (JSON or CSV files), results, rollback, journal entries."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from fastapi import Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from api.accept import accept
from api.deps import (
    INLINE_PARSE_BYTES,
    CursorQuery,
    IdempotencyKeyHeader,
    LimitQuery,
    Reader,
    RunsWriter,
    TenantSession,
    api_router,
    form_body,
    parse_json,
    read_body,
    tenant_of,
    validate_body,
)
from api.openapi import errors
from shared.config import get_settings
from shared.errors import TooLarge, ValidationFailed
from shared.jobs import service as jobs
from shared.jobs.kinds import JobStatus
from shared.journals import service as journals
from shared.journals.schemas import JournalEntryOut
from shared.runs import service as runs
from shared.runs.models import RunStatus
from shared.runs.schemas import (
    AllocationOut,
    RollbackAccepted,
    RunAccepted,
    RunCreate,
    RunMode,
    RunOut,
    RunUpload,
    SaleOut,
    ValidationErrorOut,
)
from shared.schemas import Page

router = api_router(prefix="/runs", tags=["runs"])


@dataclass(frozen=True)
class RunSubmission:
    """A run request, from a JSON body or a multipart upload."""

    body_tenant_ids: frozenset[str]
    dry_run: bool
    mode: str | None
    sales: tuple[runs.InputFormat, bytes]
    lots: tuple[runs.InputFormat, bytes] | None
    fingerprint: str
    rows: int | None = None  # known for a JSON body; a CSV file's are counted by the run job


def _missing_file(name: str) -> ValidationFailed:
    return ValidationFailed(
        f"multipart field '{name}' (a CSV file) is required",
        reason="BAD_CSV",
        details=[{"field": name, "message": "missing"}],
    )


def _read_upload(upload: UploadFile) -> bytes:
    limit = get_settings().max_upload_bytes
    content = upload.file.read(limit + 1)
    if len(content) > limit:
        raise TooLarge(
            f"'{upload.filename}' is larger than the upload limit of {limit} bytes",
            reason="FILE_TOO_LARGE",
            details=[{"field": "file", "message": f"at most {limit} bytes"}],
        )
    return content


def _truthy(value: Any) -> bool:
    if isinstance(value, str) and value.strip().lower() in ("", "0", "false", "no", "off"):
        return False
    return bool(value)


def _from_form(form: Any) -> RunSubmission:
    sales_upload, lots_upload = form.get("sales_file"), form.get("lots_file")
    if not isinstance(sales_upload, UploadFile):
        raise _missing_file("sales_file")
    sales_bytes = _read_upload(sales_upload)
    lots_bytes = _read_upload(lots_upload) if isinstance(lots_upload, UploadFile) else None
    mode = str(form.get("mode") or "") or None
    if mode is not None and mode not in get_args(RunMode):
        methods = ", ".join(get_args(RunMode))
        raise ValidationFailed(
            f"mode must be one of {methods}",
            reason="BAD_REQUEST",
            details=[{"field": "mode", "message": f"one of {methods}"}],
        )
    dry_run = _truthy(form.get("dry_run"))
    tenant = form.get("tenant_id")
    return RunSubmission(
        body_tenant_ids=frozenset({str(tenant)}) if tenant else frozenset(),
        dry_run=dry_run,
        mode=mode,
        sales=("csv", sales_bytes),
        lots=("csv", lots_bytes) if lots_bytes is not None else None,
        fingerprint=jobs.request_fingerprint("multipart", dry_run, mode, sales_bytes, lots_bytes or b""),
    )


def _from_json(raw: bytes) -> RunSubmission:
    body = validate_body(RunCreate, parse_json(raw))
    row_tenants = {str(r["tenant_id"]) for r in [*body.sales_data, *body.lots_data] if r.get("tenant_id")}
    return RunSubmission(
        body_tenant_ids=frozenset(row_tenants | ({body.tenant_id} if body.tenant_id else set())),
        dry_run=body.dry_run,
        mode=body.mode,
        sales=("json", runs.records_blob(body.sales_data)),
        lots=("json", runs.records_blob(body.lots_data)) if body.lots_data else None,
        fingerprint=jobs.request_fingerprint("json", hashlib.sha256(raw).digest()),
        rows=len(body.sales_data) + len(body.lots_data),
    )


async def run_submission(request: Request, principal: RunsWriter) -> RunSubmission:
    """The body of POST /runs, read only after the caller is known to hold the permission; parsing and
    validating it is CPU work, so it runs in the threadpool."""
    del principal  # declared so that 401 and 403 come before the body is read
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await form_body(request)
        try:
            return await run_in_threadpool(_from_form, form)
        finally:
            await form.close()
    raw = await read_body(request)
    if len(raw) <= INLINE_PARSE_BYTES:  # a small body parses at once; a large one is CPU work for the threadpool
        return _from_json(raw)
    return await run_in_threadpool(_from_json, raw)


run_submission.reads_body = True  # type: ignore[attr-defined]  # read by the route-order test
run_submission.body_models = {  # type: ignore[attr-defined]  # the OpenAPI requestBody (api/openapi.py)
    "application/json": RunCreate,
    "multipart/form-data": RunUpload,
}


@router.post("", status_code=202, response_model=RunAccepted, operation_id="runs_create", responses=errors(402))
def create_run(
    principal: RunsWriter,
    session: TenantSession,
    submission: Annotated[RunSubmission, Depends(run_submission)],
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    tenant_id = tenant_of(principal)
    for other in submission.body_tenant_ids:
        tenant_of(principal, other)

    def submit() -> dict[str, Any]:
        run_id, job = runs.submit_run(
            session,
            tenant_id=tenant_id,
            actor=principal,
            dry_run=submission.dry_run,
            mode=submission.mode,
            sales=submission.sales,
            lots=submission.lots,
            rows=submission.rows,
        )
        return RunAccepted(run_id=run_id, job_id=job.id, status=RunStatus.QUEUED).model_dump()

    return accept(session, tenant_id, idempotency_key, submission.fingerprint, submit)


@router.get("", response_model=Page[RunOut], operation_id="runs_list")
def list_runs(
    principal: Reader,
    session: TenantSession,
    status: RunStatus | None = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[RunOut]:
    items, next_cursor = runs.list_runs(session, tenant_of(principal), status=status, limit=limit, cursor=cursor)
    return Page(items=[RunOut.model_validate(r) for r in items], next_cursor=next_cursor)


@router.get("/{run_id}", response_model=RunOut, operation_id="runs_get")
def get_run(run_id: str, principal: Reader, session: TenantSession) -> RunOut:
    return RunOut.model_validate(runs.get_run(session, tenant_of(principal), run_id))


@router.get(
    "/{run_id}/validation-errors", response_model=Page[ValidationErrorOut], operation_id="runs_validation_errors"
)
def validation_errors(
    run_id: str, principal: Reader, session: TenantSession, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[ValidationErrorOut]:
    run = runs.get_run(session, tenant_of(principal), run_id)
    rows, next_cursor = runs.list_validation_errors(session, run, limit=limit, cursor=cursor)
    return Page(items=[ValidationErrorOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/{run_id}/sales", response_model=Page[SaleOut], operation_id="runs_sales")
def sales(
    run_id: str, principal: Reader, session: TenantSession, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[SaleOut]:
    run = runs.get_run(session, tenant_of(principal), run_id)
    rows, next_cursor = runs.list_sales(session, run, limit=limit, cursor=cursor)
    return Page(items=[SaleOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/{run_id}/allocations", response_model=Page[AllocationOut], operation_id="runs_allocations")
def allocations(
    run_id: str, principal: Reader, session: TenantSession, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[AllocationOut]:
    run = runs.get_run(session, tenant_of(principal), run_id)
    items, next_cursor = runs.list_allocations(session, run, limit=limit, cursor=cursor)
    return Page(items=[AllocationOut.model_validate(i) for i in items], next_cursor=next_cursor)


@router.post(
    "/{run_id}/rollback",
    status_code=202,
    response_model=RollbackAccepted,
    operation_id="runs_rollback",
    responses=errors(409),
)
def rollback(
    run_id: str,
    principal: RunsWriter,
    session: TenantSession,
    cascade: bool = False,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    tenant_id = tenant_of(principal)

    def submit() -> dict[str, Any]:
        job = runs.request_rollback(session, tenant_id=tenant_id, actor=principal, run_id=run_id, cascade=cascade)
        return RollbackAccepted(run_id=run_id, job_id=job.id, status=JobStatus.QUEUED, cascade=cascade).model_dump()

    return accept(session, tenant_id, idempotency_key, jobs.request_fingerprint("rollback", run_id, cascade), submit)


JOURNAL_RESPONSES: dict[int | str, Any] = {
    200: {
        "description": "the journal entry in the requested format (a rolled-back run's is the reversing entry)",
        "model": list[JournalEntryOut],
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/x-iif": {"schema": {"type": "string"}},
            "application/zip": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    **errors(409),
}


def journal_response(rendered: tuple[bytes, str, str]) -> Response:
    """A rendered journal entry (`journals.render_for_*`: content, media type, filename) as a download."""
    content, media_type, filename = rendered
    return Response(
        content=content, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


@router.get(
    "/{run_id}/journal-entry", operation_id="runs_journal_entry", response_class=Response, responses=JOURNAL_RESPONSES
)
def journal_entry(
    run_id: str,
    principal: Reader,
    session: TenantSession,
    format: Literal["json", "csv", "iif", "xero"] = "json",
    group_by: Literal["date", "sale"] = "date",
) -> Response:
    return journal_response(journals.render_for_run(session, tenant_of(principal), run_id, format, group_by))
