"""Ledger reports as JSON. Parameters and row order: shared/reports/schemas.py and service.py."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from api.deps import PrincipalDep, SessionDep, tenant_of
from shared.auth import Permission, Principal
from shared.reports import service as reports
from shared.reports.schemas import (
    MAX_TEXT,
    MovementReport,
    ReceivingReport,
    ReportParams,
    ShrinkReport,
    StockOnHandReport,
    ValuationReport,
    parse_params,
)

router = APIRouter(prefix="/reports", tags=["reports"])

AsOf = Annotated[str | None, Query(max_length=MAX_TEXT, description="ISO date or date-time (business time)")]
From = Annotated[str | None, Query(alias="from", max_length=MAX_TEXT, description="window start, inclusive")]
To = Annotated[str | None, Query(max_length=MAX_TEXT, description="window end, exclusive")]
HubId = Annotated[str | None, Query(max_length=40)]
Sku = Annotated[str | None, Query(max_length=100)]


def _json(body: dict[str, Any]) -> Response:
    """The rows are already in their answer form (decimal strings rendered by the query); a report may have
    tens of thousands of them, so they are encoded once rather than validated again."""
    return Response(content=json.dumps(body, separators=(",", ":")), media_type="application/json")


def _params(principal: Principal, report: str, **given: str | None) -> tuple[str, ReportParams]:
    principal.require(Permission.READ)
    tenant_id = tenant_of(principal)
    return tenant_id, parse_params(report, {k: v for k, v in given.items() if v is not None})


@router.get("/stock-on-hand", response_model=StockOnHandReport)
def stock_on_hand(
    session: SessionDep,
    principal: PrincipalDep,
    as_of: AsOf = None,
    hub_id: HubId = None,
    sku: Sku = None,
    from_: From = None,
    to: To = None,
) -> Response:
    tenant_id, params = _params(
        principal, "stock-on-hand", as_of=as_of, hub_id=hub_id, sku=sku, to=to, **{"from": from_}
    )
    return _json({"items": reports.stock_on_hand(session, tenant_id, params)})


@router.get("/inventory-movement", response_model=MovementReport)
def inventory_movement(
    session: SessionDep,
    principal: PrincipalDep,
    from_: From = None,
    to: To = None,
    hub_id: HubId = None,
    sku: Sku = None,
    as_of: AsOf = None,
) -> Response:
    tenant_id, params = _params(
        principal, "inventory-movement", as_of=as_of, hub_id=hub_id, sku=sku, to=to, **{"from": from_}
    )
    return _json({"items": reports.inventory_movement(session, tenant_id, params)})


@router.get("/receiving-summary", response_model=ReceivingReport)
def receiving_summary(
    session: SessionDep,
    principal: PrincipalDep,
    from_: From = None,
    to: To = None,
    hub_id: HubId = None,
    sku: Sku = None,
    as_of: AsOf = None,
) -> Response:
    tenant_id, params = _params(
        principal, "receiving-summary", as_of=as_of, hub_id=hub_id, sku=sku, to=to, **{"from": from_}
    )
    return _json({"items": reports.receiving_summary(session, tenant_id, params)})


@router.get("/shrink-summary", response_model=ShrinkReport)
def shrink_summary(
    session: SessionDep,
    principal: PrincipalDep,
    from_: From = None,
    to: To = None,
    hub_id: HubId = None,
    sku: Sku = None,
    as_of: AsOf = None,
) -> Response:
    tenant_id, params = _params(
        principal, "shrink-summary", as_of=as_of, hub_id=hub_id, sku=sku, to=to, **{"from": from_}
    )
    return _json({"items": reports.shrink_summary(session, tenant_id, params)})


@router.get("/valuation", response_model=ValuationReport)
def valuation(
    session: SessionDep,
    principal: PrincipalDep,
    as_of: AsOf = None,
    hub_id: HubId = None,
    sku: Sku = None,
    from_: From = None,
    to: To = None,
) -> Response:
    tenant_id, params = _params(principal, "valuation", as_of=as_of, hub_id=hub_id, sku=sku, to=to, **{"from": from_})
    rows, total = reports.valuation(session, tenant_id, params)
    return _json({"items": rows, "total_value": total})
