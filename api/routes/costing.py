"""Costing methods: the tenant's default method and the method each SKU is held to (docs/costing.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from api.deps import CursorQuery, LimitQuery, MasterWriter, Reader, TenantSession, api_router, json_body, tenant_of
from api.openapi import errors
from api.routes.runs import JOURNAL_RESPONSES, journal_response
from shared.auth import Permission
from shared.costing import Method
from shared.journals import service as journals
from shared.runs import methods
from shared.runs.schemas import (
    SkuMethodOut,
    SkuMethodSwitched,
    SkuMethodUpdate,
    SkuRevaluationAccepted,
    ValuationSettingsOut,
    ValuationSettingsUpdate,
)
from shared.schemas import Page

router = api_router(tags=["costing"])


@router.get("/settings/valuation", response_model=ValuationSettingsOut, operation_id="valuation_settings_get")
def get_valuation_settings(principal: Reader, session: TenantSession) -> ValuationSettingsOut:
    return ValuationSettingsOut(default_method=methods.default_method(session, tenant_of(principal)).value)


@router.put(
    "/settings/valuation",
    response_model=ValuationSettingsOut,
    operation_id="valuation_settings_update",
)
def update_valuation_settings(
    principal: MasterWriter,
    session: TenantSession,
    body: Annotated[ValuationSettingsUpdate, json_body(ValuationSettingsUpdate)],
) -> ValuationSettingsOut:
    tenant_id = tenant_of(principal, body.tenant_id)
    tenant = methods.set_default_method(session, tenant_id, Method(body.default_method), actor=principal)
    return ValuationSettingsOut(default_method=Method(tenant.valuation_method).value)


@router.get("/valuation-methods", response_model=Page[SkuMethodOut], operation_id="valuation_methods_list")
def list_valuation_methods(
    principal: Reader, session: TenantSession, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[SkuMethodOut]:
    rows, next_cursor = methods.list_methods(session, tenant_of(principal), limit=limit, cursor=cursor)
    return Page(items=[SkuMethodOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.put(
    "/valuation-methods/{sku}",
    response_model=SkuMethodSwitched,
    operation_id="valuation_methods_switch",
    description=(
        "Hold a SKU to a costing method from now on (audited). From FIFO or LIFO, and from moving average when "
        "its pool carries no value beyond its lots' own costs: 200, switched. A switch away from moving average "
        "that would revalue stock on hand: 409 REVALUATION_REQUIRED, unless the body asks for it with "
        '`"revalue": true` (the `runs.write` permission as well); then 202 with a `revaluation` job that posts '
        "the revaluation and switches the SKU in the tenant's ledger order (docs/costing.md)."
    ),
    responses={
        **errors(404, 409),
        202: {"model": SkuRevaluationAccepted, "description": "the revaluation job, accepted"},
    },
)
def switch_valuation_method(
    request: Request,
    sku: str,
    principal: MasterWriter,
    session: TenantSession,
    body: Annotated[SkuMethodUpdate, json_body(SkuMethodUpdate)],
) -> SkuMethodSwitched | JSONResponse:
    tenant_id = tenant_of(principal, body.tenant_id)
    if body.revalue:
        principal.require(Permission.RUNS_WRITE)  # a revaluation writes the ledger: never the operator
    switched = methods.switch_sku(
        session, tenant_id, sku, Method(body.method), actor=principal, revalue=body.revalue,
        request_id=request.state.request_id,
    )  # fmt: skip
    if isinstance(switched, methods.RevaluationAccepted):
        answer = SkuRevaluationAccepted(
            job_id=switched.job.id, kind=switched.job.kind, status=switched.job.status, sku=switched.sku,
            method=switched.method.value, previous_method=switched.previous_method,
            carried_value=switched.carried_value,
        )  # fmt: skip
        return JSONResponse(status_code=202, content=answer.model_dump(mode="json"))
    return SkuMethodSwitched.model_validate(switched)


@router.get(
    "/revaluations/{job_id}/journal-entry",
    operation_id="revaluations_journal_entry",
    response_class=Response,
    responses=JOURNAL_RESPONSES,
    description="The journal entry of a revaluation job (Inventory against COGS); 422 NO_DATA if it posted none.",
)
def revaluation_journal_entry(
    job_id: str, principal: Reader, session: TenantSession, format: Literal["json", "csv", "iif", "xero"] = "json"
) -> Response:
    return journal_response(journals.render_for_revaluation(session, tenant_of(principal), job_id, format))
