"""Returns: a sale's units back into stock, or a lot's units back to the vendor; accepted as jobs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from api.accept import accept
from api.deps import IdempotencyKeyHeader, Reader, ReceiptsWriter, TenantSession, api_router, json_body, tenant_of
from api.routes.runs import JOURNAL_RESPONSES, journal_response
from shared.jobs import service as jobs
from shared.journals import service as journals
from shared.returns import service as returns
from shared.returns.schemas import ReturnAccepted, ReturnCreate, ReturnOut

router = api_router(prefix="/returns", tags=["returns"])


@router.post("", status_code=202, response_model=ReturnAccepted, operation_id="returns_create")
def create_return(
    request: Request,
    principal: ReceiptsWriter,
    session: TenantSession,
    body: Annotated[ReturnCreate, json_body(ReturnCreate)],
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    tenant_id = tenant_of(principal, body.tenant_id)

    def submit() -> dict[str, Any]:
        row, job = returns.submit_return(
            session, tenant_id=tenant_id, actor=principal, body=body, request_id=request.state.request_id
        )
        return ReturnAccepted(return_id=row.id, job_id=job.id, kind=job.kind, status=job.status).model_dump()

    fingerprint = jobs.request_fingerprint("return", body.model_dump(mode="json", exclude={"tenant_id"}))
    return accept(session, tenant_id, idempotency_key, fingerprint, submit)


@router.get("/{return_id}", response_model=ReturnOut, operation_id="returns_get")
def get_return(return_id: str, principal: Reader, session: TenantSession) -> ReturnOut:
    return ReturnOut.model_validate(returns.get_return(session, tenant_of(principal), return_id))


@router.get(
    "/{return_id}/journal-entry",
    operation_id="returns_journal_entry",
    response_class=Response,
    responses=JOURNAL_RESPONSES,
)
def journal_entry(
    return_id: str,
    principal: Reader,
    session: TenantSession,
    format: Literal["json", "csv", "iif", "xero"] = "json",
) -> Response:
    return journal_response(journals.render_for_return(session, tenant_of(principal), return_id, format))
