"""Exports: request (a job on the exports queue), status, history, and the stored file."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from api.accept import accept
from api.deps import (
    CursorQuery,
    ExportsCreator,
    IdempotencyKeyHeader,
    LimitQuery,
    Reader,
    TenantSession,
    api_router,
    json_body,
    tenant_of,
)
from api.openapi import content, errors
from shared.exports import service as exports
from shared.exports.models import ExportStatus
from shared.exports.schemas import ExportAccepted, ExportCreate, ExportOut
from shared.jobs import service as jobs
from shared.reports.schemas import parse_params
from shared.schemas import Page

router = api_router(prefix="/exports", tags=["exports"])


@router.post("", status_code=202, response_model=ExportAccepted, operation_id="exports_create", responses=errors(402))
def create_export(
    request: Request,
    principal: ExportsCreator,
    session: TenantSession,
    body: Annotated[ExportCreate, json_body(ExportCreate)],
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    tenant_id = tenant_of(principal, body.tenant_id)
    params = parse_params(body.report, body.params)

    def submit() -> dict[str, Any]:
        export, job = exports.request_export(
            session, tenant_id=tenant_id, actor=principal, report=body.report, params=params
        )
        return ExportAccepted(export_id=export.id, job_id=job.id, status=ExportStatus.QUEUED).model_dump()

    # Semantically equal parameters (another spelling of the same date) are the same request.
    fingerprint = jobs.request_fingerprint("export", body.report, params.canonical())
    return accept(session, tenant_id, idempotency_key, fingerprint, submit)


@router.get("", response_model=Page[ExportOut], operation_id="exports_list")
def list_exports(
    principal: Reader, session: TenantSession, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[ExportOut]:
    rows, next_cursor = exports.list_exports(session, tenant_of(principal), limit=limit, cursor=cursor)
    return Page(items=[ExportOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/{export_id}", response_model=ExportOut, operation_id="exports_get")
def get_export(export_id: str, principal: Reader, session: TenantSession) -> ExportOut:
    return ExportOut.model_validate(exports.get_export(session, tenant_of(principal), export_id))


_DOWNLOAD = content("text/csv", "the export's CSV (409 EXPORT_NOT_READY until it has completed)")
_DOWNLOAD[200]["headers"] = {
    "Content-Disposition": {"schema": {"type": "string"}, "description": "attachment; the export's stable filename"},
    "X-Content-SHA256": {"schema": {"type": "string"}, "description": "hex SHA-256 of the content"},
}


@router.get(
    "/{export_id}/download",
    operation_id="exports_download",
    response_class=Response,
    responses={**_DOWNLOAD, **errors(409)},
)
def download_export(export_id: str, principal: Reader, session: TenantSession) -> Response:
    export, content = exports.export_content(session, tenant_of(principal), export_id)
    return Response(
        content=content,
        media_type=exports.MEDIA_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{export.filename}"',
            "X-Content-SHA256": export.sha256 or "",
        },
    )
