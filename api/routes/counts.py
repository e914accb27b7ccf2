"""Cycle counts: accepted as jobs; the worker records expected vs counted and ledgers the differences."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Request
from fastapi.responses import JSONResponse

from api.accept import accept
from api.deps import (
    CountsWriter,
    CursorQuery,
    IdempotencyKeyHeader,
    LimitQuery,
    Reader,
    TenantSession,
    api_router,
    json_body,
    tenant_of,
)
from shared.inventory import counts as inventory
from shared.inventory.schemas import CountAccepted, CountCreate, CountOut, CountSummary
from shared.jobs import service as jobs
from shared.schemas import Page

router = api_router(prefix="/counts", tags=["counts"])


@router.post("", status_code=202, response_model=CountAccepted, operation_id="counts_create")
def create_count(
    request: Request,
    principal: CountsWriter,
    session: TenantSession,
    body: Annotated[CountCreate, json_body(CountCreate)],
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    tenant_id = tenant_of(principal, body.tenant_id)

    def submit() -> dict[str, Any]:
        count, job = inventory.submit_count(
            session, tenant_id=tenant_id, actor=principal, body=body, request_id=request.state.request_id
        )
        return CountAccepted(count_id=count.id, job_id=job.id, kind=job.kind, status=job.status).model_dump()

    fingerprint = jobs.request_fingerprint("count", body.model_dump(mode="json", exclude={"tenant_id"}))
    return accept(session, tenant_id, idempotency_key, fingerprint, submit)


@router.get("", response_model=Page[CountSummary], operation_id="counts_list")
def list_counts(
    principal: Reader, session: TenantSession, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[CountSummary]:
    items, next_cursor = inventory.list_counts(session, tenant_of(principal), limit=limit, cursor=cursor)
    return Page[CountSummary](items=[CountSummary.model_validate(i) for i in items], next_cursor=next_cursor)


@router.get("/{count_id}", response_model=CountOut, operation_id="counts_get")
def get_count(count_id: str, principal: Reader, session: TenantSession) -> CountOut:
    return CountOut.model_validate(inventory.get_count(session, tenant_of(principal), count_id))
