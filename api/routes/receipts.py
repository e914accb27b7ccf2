"""Receiving: a receipt is checked at intake and posted by the worker (RECEIPT events and lots)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import IdempotencyKeyHeader, SessionDep, tenant_of
from api.intake import json_body, requires
from api.outbox import commit_and_publish
from shared.auth import Permission, Principal
from shared.inventory import service as inventory
from shared.inventory.schemas import JobAccepted, ReceiptCreate
from shared.jobs import service as jobs

router = APIRouter(tags=["receipts"])


@router.post("/receipts", status_code=202, response_model=JobAccepted)
def create_receipt(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, requires(Permission.RECEIPTS_WRITE)],
    body: Annotated[ReceiptCreate, json_body(ReceiptCreate)],
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    tenant_id = tenant_of(principal, body.tenant_id)
    if idempotency_key:
        fingerprint = jobs.request_fingerprint("receipt", body.model_dump(mode="json", exclude={"tenant_id"}))
        previous = jobs.claim_key(session, tenant_id, idempotency_key, fingerprint)
        if previous is not None:
            return JSONResponse(status_code=previous[0], content=previous[1])
    job = inventory.submit_receipt(
        session, tenant_id=tenant_id, actor=principal, body=body, request_id=getattr(request.state, "request_id", None)
    )
    answer = JobAccepted(job_id=job.id, kind=job.kind, status=job.status).model_dump()
    if idempotency_key:
        jobs.store_answer(session, tenant_id, idempotency_key, 202, answer)
    commit_and_publish(session, [job])
    return JSONResponse(status_code=202, content=answer)
