"""Exports: request (a job on the exports queue), status, history, and the stored file."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from api.deps import IdempotencyKeyHeader, LimitQuery, PrincipalDep, SessionDep, tenant_of
from api.outbox import accept
from shared.auth import Permission
from shared.exports import service as exports
from shared.exports.schemas import ExportAccepted, ExportCreate, ExportOut
from shared.jobs import service as jobs
from shared.jobs.models import Job
from shared.reports.schemas import parse_params
from shared.schemas import Page

router = APIRouter(prefix="/exports", tags=["exports"])


@router.post("", status_code=202, response_model=ExportAccepted)
def create_export(
    body: ExportCreate, session: SessionDep, principal: PrincipalDep, idempotency_key: IdempotencyKeyHeader = None
) -> JSONResponse:
    principal.require(Permission.EXPORTS_CREATE)
    tenant_id = tenant_of(principal, body.tenant_id)
    params = parse_params(body.report, body.params)

    def submit() -> tuple[dict[str, Any], Job]:
        export, job = exports.request_export(
            session, tenant_id=tenant_id, actor=principal, report=body.report, params=params
        )
        return ExportAccepted(export_id=export.id, job_id=job.id, status="queued").model_dump(), job

    fingerprint = jobs.request_fingerprint("export", body.report, params.canonical())
    return accept(session, tenant_id, idempotency_key, fingerprint, submit)


@router.get("", response_model=Page[ExportOut])
def list_exports(
    session: SessionDep, principal: PrincipalDep, limit: LimitQuery = 100, cursor: str | None = None
) -> Page[ExportOut]:
    principal.require(Permission.READ)
    rows = exports.list_exports(session, tenant_of(principal), limit=limit, cursor=cursor)
    return Page(
        items=[ExportOut.model_validate(r) for r in rows], next_cursor=rows[-1].id if len(rows) == limit else None
    )


@router.get("/{export_id}", response_model=ExportOut)
def get_export(export_id: str, session: SessionDep, principal: PrincipalDep) -> ExportOut:
    principal.require(Permission.READ)
    return ExportOut.model_validate(exports.get_export(session, tenant_of(principal), export_id))


@router.get("/{export_id}/download")
def download_export(export_id: str, session: SessionDep, principal: PrincipalDep) -> Response:
    principal.require(Permission.READ)
    export, content = exports.export_content(session, tenant_of(principal), export_id)
    return Response(
        content=content,
        media_type=exports.MEDIA_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{export.filename}"',
            "X-Content-SHA256": export.sha256 or "",
        },
    )
