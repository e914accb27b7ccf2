"""Costing methods: the tenant's default method and the method each SKU is held to (docs/costing.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from api.deps import CursorQuery, LimitQuery, MasterWriter, Reader, TenantSession, json_body, tenant_of
from api.openapi import errors
from shared.costing import Method
from shared.runs import methods
from shared.runs.schemas import (
    SkuMethodOut,
    SkuMethodSwitched,
    SkuMethodUpdate,
    ValuationSettingsOut,
    ValuationSettingsUpdate,
)
from shared.schemas import Page

router = APIRouter(tags=["costing"])


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
    responses=errors(404, 409),
)
def switch_valuation_method(
    sku: str,
    principal: MasterWriter,
    session: TenantSession,
    body: Annotated[SkuMethodUpdate, json_body(SkuMethodUpdate)],
) -> SkuMethodSwitched:
    tenant_id = tenant_of(principal, body.tenant_id)
    switched = methods.switch_sku(session, tenant_id, sku, Method(body.method), actor=principal)
    return SkuMethodSwitched.model_validate(switched)
