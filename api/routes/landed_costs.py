"""Landed cost after receipt: freight or duty spread over a lot's units on hand and the sales that issued them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from api.accept import accept
from api.deps import IdempotencyKeyHeader, Reader, RunsWriter, TenantSession, api_router, json_body, tenant_of
from api.routes.runs import JOURNAL_RESPONSES, journal_response
from shared.jobs import service as jobs
from shared.journals import service as journals
from shared.landed_costs import service as landed_costs
from shared.landed_costs.schemas import LandedCostAccepted, LandedCostCreate, LandedCostOut

router = api_router(prefix="/landed-costs", tags=["landed-costs"])


@router.post("", status_code=202, response_model=LandedCostAccepted, operation_id="landed_costs_create")
def create_landed_cost(
    request: Request,
    principal: RunsWriter,
    session: TenantSession,
    body: Annotated[LandedCostCreate, json_body(LandedCostCreate)],
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    tenant_id = tenant_of(principal, body.tenant_id)

    def submit() -> dict[str, Any]:
        row, job = landed_costs.submit_landed_cost(
            session, tenant_id=tenant_id, actor=principal, body=body, request_id=request.state.request_id
        )
        return LandedCostAccepted(landed_cost_id=row.id, job_id=job.id, kind=job.kind, status=job.status).model_dump()

    fingerprint = jobs.request_fingerprint("landed_cost", body.model_dump(mode="json", exclude={"tenant_id"}))
    return accept(session, tenant_id, idempotency_key, fingerprint, submit)


@router.get("/{landed_cost_id}", response_model=LandedCostOut, operation_id="landed_costs_get")
def get_landed_cost(landed_cost_id: str, principal: Reader, session: TenantSession) -> LandedCostOut:
    return LandedCostOut.model_validate(landed_costs.get_landed_cost(session, tenant_of(principal), landed_cost_id))


@router.get(
    "/{landed_cost_id}/journal-entry",
    operation_id="landed_costs_journal_entry",
    response_class=Response,
    responses=JOURNAL_RESPONSES,
)
def journal_entry(
    landed_cost_id: str,
    principal: Reader,
    session: TenantSession,
    format: Literal["json", "csv", "iif", "xero"] = "json",
) -> Response:
    return journal_response(journals.render_for_landed_cost(session, tenant_of(principal), landed_cost_id, format))
