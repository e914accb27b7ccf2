"""Receiving: a receipt is checked at intake and posted by the worker (RECEIPT events and lots)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Request
from fastapi.responses import JSONResponse

from api.accept import accept
from api.deps import IdempotencyKeyHeader, ReceiptsWriter, TenantSession, api_router, json_body, tenant_of
from shared.inventory import receipts as inventory
from shared.inventory.schemas import JobAccepted, ReceiptCreate
from shared.jobs import service as jobs

router = api_router(tags=["receipts"])


@router.post("/receipts", status_code=202, response_model=JobAccepted, operation_id="receipts_create")
def create_receipt(
    request: Request,
    principal: ReceiptsWriter,
    session: TenantSession,
    body: Annotated[ReceiptCreate, json_body(ReceiptCreate)],
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    tenant_id = tenant_of(principal, body.tenant_id)

    def submit() -> dict[str, Any]:
        job = inventory.submit_receipt(
            session, tenant_id=tenant_id, actor=principal, body=body, request_id=request.state.request_id
        )
        return JobAccepted(job_id=job.id, kind=job.kind, status=job.status).model_dump()

    fingerprint = jobs.request_fingerprint("receipt", body.model_dump(mode="json", exclude={"tenant_id"}))
    return accept(session, tenant_id, idempotency_key, fingerprint, submit)
