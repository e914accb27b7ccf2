"""COGS runs: intake (JSON or CSV files), results, rollback, journal entries."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from api.deps import IdempotencyKeyHeader, LimitQuery, PrincipalDep, SessionDep, tenant_of
from api.outbox import accept
from shared.auth import Permission
from shared.config import get_settings
from shared.errors import ValidationFailed
from shared.jobs import service as jobs
from shared.jobs.models import Job
from shared.journals import service as journals
from shared.runs import service as runs
from shared.runs.schemas import (
    AllocationOut,
    RollbackAccepted,
    RunAccepted,
    RunCreate,
    RunOut,
    SaleOut,
    ValidationErrorOut,
)
from shared.schemas import Page

router = APIRouter(prefix="/runs", tags=["runs"])


def _bad_request(
    message: str, details: list[dict[str, Any]] | None = None, reason: str = "BAD_REQUEST"
) -> ValidationFailed:
    return ValidationFailed(message, reason=reason, details=details or [])


async def _read_json_body(request: Request) -> tuple[RunCreate, dict[str, Any]]:
    raw = await request.body()
    try:
        # parse_float=str keeps every number's exact digits; nothing passes through binary floating point.
        body = json.loads(raw, parse_float=str)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad_request("the request body is not valid JSON", reason="MALFORMED_JSON") from exc
    if not isinstance(body, dict):
        raise _bad_request("the request body must be a JSON object")
    try:
        return RunCreate.model_validate(body), body
    except ValidationError as exc:
        details = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()[:100]]
        raise _bad_request("the request is invalid", details) from exc


async def _read_upload(form: Any, name: str, required: bool) -> bytes | None:
    upload = form.get(name)
    if upload is None or isinstance(upload, str):
        if required:
            raise _bad_request(
                f"multipart field '{name}' (a CSV file) is required",
                [{"field": name, "message": "missing"}],
                reason="BAD_CSV",
            )
        return None
    content: bytes = await upload.read()
    if len(content) > get_settings().max_upload_bytes:
        raise _bad_request(
            f"'{name}' is larger than the upload limit", [{"field": name, "message": "too large"}], reason="BAD_CSV"
        )
    return content


def _truthy(value: Any) -> bool:
    if isinstance(value, str) and value.strip().lower() in ("", "0", "false", "no", "off"):
        return False
    return bool(value)


@router.post("", status_code=202, response_model=RunAccepted)
async def create_run(
    request: Request, session: SessionDep, principal: PrincipalDep, idempotency_key: IdempotencyKeyHeader = None
) -> JSONResponse:
    principal.require(Permission.RUNS_WRITE)
    content_type = request.headers.get("content-type", "")
    sales: tuple[runs.InputFormat, bytes]
    lots: tuple[runs.InputFormat, bytes] | None
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        tenant_id = tenant_of(principal, str(form["tenant_id"]) if form.get("tenant_id") else None)
        sales_bytes = await _read_upload(form, "sales_file", required=True)
        lots_bytes = await _read_upload(form, "lots_file", required=False)
        assert sales_bytes is not None
        sales = ("csv", sales_bytes)
        lots = ("csv", lots_bytes) if lots_bytes is not None else None
        mode = str(form.get("mode") or "fifo")
        if mode != "fifo":
            raise _bad_request("mode must be 'fifo'", [{"field": "mode", "message": "unsupported"}])
        dry_run = _truthy(form.get("dry_run"))
        fingerprint = jobs.request_fingerprint("multipart", dry_run, mode, sales_bytes, lots_bytes or b"")
    else:
        body, raw = await _read_json_body(request)
        row_tenants = {str(r["tenant_id"]) for r in [*body.sales_data, *body.lots_data] if r.get("tenant_id")}
        tenant_id = tenant_of(principal, body.tenant_id)
        for other in row_tenants:
            tenant_of(principal, other)
        sales = ("json", runs.records_blob(body.sales_data))
        lots = ("json", runs.records_blob(body.lots_data)) if body.lots_data else None
        dry_run, mode = body.dry_run, body.mode
        fingerprint = jobs.request_fingerprint("json", raw)

    def submit() -> tuple[dict[str, Any], Job]:
        run, job = runs.submit_run(
            session, tenant_id=tenant_id, actor=principal, dry_run=dry_run, mode=mode, sales=sales, lots=lots
        )
        return RunAccepted(run_id=run.id, job_id=job.id, status="queued").model_dump(), job

    return accept(session, tenant_id, idempotency_key, fingerprint, submit)


@router.get("", response_model=Page[RunOut])
def list_runs(
    session: SessionDep,
    principal: PrincipalDep,
    status: str | None = None,
    limit: LimitQuery = 100,
    cursor: str | None = None,
) -> Page[RunOut]:
    principal.require(Permission.READ)
    items = runs.list_runs(session, tenant_of(principal), status=status, limit=limit, cursor=cursor)
    return Page(
        items=[RunOut.model_validate(r) for r in items], next_cursor=items[-1].id if len(items) == limit else None
    )


@router.get("/{run_id}", response_model=RunOut)
def get_run(run_id: str, session: SessionDep, principal: PrincipalDep) -> RunOut:
    principal.require(Permission.READ)
    return RunOut.model_validate(runs.get_run(session, tenant_of(principal), run_id))


@router.get("/{run_id}/validation-errors", response_model=Page[ValidationErrorOut])
def validation_errors(
    run_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    limit: LimitQuery = 100,
    cursor: Annotated[int | None, Query(ge=0)] = None,
) -> Page[ValidationErrorOut]:
    principal.require(Permission.READ)
    run = runs.get_run(session, tenant_of(principal), run_id)
    rows = runs.list_validation_errors(session, run, limit=limit, cursor=cursor)
    return Page(
        items=[ValidationErrorOut.model_validate(r) for r in rows],
        next_cursor=str(rows[-1].position) if len(rows) == limit else None,
    )


@router.get("/{run_id}/sales", response_model=Page[SaleOut])
def sales(
    run_id: str, session: SessionDep, principal: PrincipalDep, limit: LimitQuery = 100, cursor: str | None = None
) -> Page[SaleOut]:
    principal.require(Permission.READ)
    run = runs.get_run(session, tenant_of(principal), run_id)
    rows = runs.list_sales(session, run, limit=limit, cursor=cursor)
    return Page(
        items=[SaleOut.model_validate(r) for r in rows], next_cursor=rows[-1].sale_id if len(rows) == limit else None
    )


@router.get("/{run_id}/allocations", response_model=Page[AllocationOut])
def allocations(
    run_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    limit: LimitQuery = 100,
    cursor: Annotated[int | None, Query(ge=0)] = None,
) -> Page[AllocationOut]:
    principal.require(Permission.READ)
    run = runs.get_run(session, tenant_of(principal), run_id)
    items, last = runs.list_allocations(session, run, limit=limit, cursor=cursor)
    return Page(
        items=[AllocationOut.model_validate(i) for i in items], next_cursor=str(last) if last is not None else None
    )


@router.post("/{run_id}/rollback", status_code=202, response_model=RollbackAccepted)
def rollback(
    run_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    cascade: bool = False,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    principal.require(Permission.RUNS_WRITE)
    tenant_id = tenant_of(principal)

    def submit() -> tuple[dict[str, Any], Job]:
        job = runs.request_rollback(session, tenant_id=tenant_id, actor=principal, run_id=run_id, cascade=cascade)
        return RollbackAccepted(run_id=run_id, job_id=job.id, status="queued", cascade=cascade).model_dump(), job

    return accept(session, tenant_id, idempotency_key, jobs.request_fingerprint("rollback", run_id, cascade), submit)


@router.get("/{run_id}/journal-entry")
def journal_entry(
    run_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    format: Literal["json", "csv", "iif", "xero"] = "json",
    group_by: Literal["date", "sale"] = "date",
) -> Response:
    principal.require(Permission.READ)
    content, media_type, filename = journals.render_for_run(session, tenant_of(principal), run_id, format, group_by)
    return Response(
        content=content, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )
