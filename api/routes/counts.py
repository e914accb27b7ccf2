"""Cycle counts: accepted as jobs; the worker records expected vs counted and ledgers the differences."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from api.deps import IdempotencyKeyHeader, LimitQuery, SessionDep, tenant_of
from api.intake import Reader, json_body, requires
from api.outbox import accept
from shared.auth import Permission, Principal
from shared.inventory import service as inventory
from shared.inventory.schemas import CountAccepted, CountCreate, CountOut, CountSummary
from shared.jobs import service as jobs
from shared.jobs.models import Job
from shared.schemas import Page

router = APIRouter(prefix="/counts", tags=["counts"])


@router.post("", status_code=202, response_model=CountAccepted)
def create_count(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, requires(Permission.COUNTS_WRITE)],
    body: Annotated[CountCreate, json_body(CountCreate)],
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    tenant_id = tenant_of(principal, body.tenant_id)

    def submit() -> tuple[dict[str, Any], Job]:
        request_id = getattr(request.state, "request_id", None)
        count, job = inventory.submit_count(
            session, tenant_id=tenant_id, actor=principal, body=body, request_id=request_id
        )
        return CountAccepted(count_id=count.id, job_id=job.id, kind=job.kind, status=job.status).model_dump(), job

    fingerprint = jobs.request_fingerprint("count", body.model_dump(mode="json", exclude={"tenant_id"}))
    return accept(session, tenant_id, idempotency_key, fingerprint, submit)


@router.get("", response_model=Page[CountSummary])
def list_counts(
    session: SessionDep,
    principal: Reader,
    limit: LimitQuery = 100,
    cursor: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_]*$")] = None,
) -> Any:
    items, next_cursor = inventory.list_counts(session, tenant_of(principal), limit=limit, cursor=cursor)
    return Page[CountSummary](items=[CountSummary.model_validate(i) for i in items], next_cursor=next_cursor)


@router.get("/{count_id}", response_model=CountOut)
def get_count(count_id: str, session: SessionDep, principal: Reader) -> CountOut:
    return CountOut.model_validate(inventory.get_count(session, tenant_of(principal), count_id))
