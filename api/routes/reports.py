"""Ledger reports as JSON. Parameters and row order: shared/reports/schemas.py and service.py."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Query, Response

from api.deps import Reader, TenantSession, api_router, tenant_of
from shared.reports import service as reports
from shared.reports.schemas import (
    ID_MAX,
    MAX_TEXT,
    SKU_MAX,
    MovementReport,
    ReceivingReport,
    ReportParams,
    ShrinkReport,
    StockOnHandReport,
    ValuationReport,
    parse_params,
)

router = api_router(prefix="/reports", tags=["reports"])

AsOf = Annotated[str | None, Query(max_length=MAX_TEXT, description="ISO date or date-time (business time)")]
From = Annotated[str | None, Query(alias="from", max_length=MAX_TEXT, description="window start, inclusive")]
To = Annotated[str | None, Query(max_length=MAX_TEXT, description="window end, exclusive")]
HubId = Annotated[str | None, Query(max_length=ID_MAX)]
Sku = Annotated[str | None, Query(max_length=SKU_MAX)]


def _json(body: dict[str, Any]) -> Response:
    """The rows are already in their answer form (decimal strings rendered by the query); a report may have
    tens of thousands of them, so they are encoded once rather than validated again."""
    return Response(content=json.dumps(body, separators=(",", ":")), media_type="application/json")


def _scope(report: str) -> Any:
    """A dependency giving (tenant, validated parameters) for one report: every report takes the same query
    parameters, and `parse_params` refuses those that do not apply to it."""

    async def scope(
        principal: Reader,
        as_of: AsOf = None,
        hub_id: HubId = None,
        sku: Sku = None,
        from_: From = None,
        to: To = None,
    ) -> tuple[str, ReportParams]:
        given = {"as_of": as_of, "hub_id": hub_id, "sku": sku, "from": from_, "to": to}
        return tenant_of(principal), parse_params(report, {k: v for k, v in given.items() if v is not None})

    return Depends(scope)


Scoped = tuple[str, ReportParams]


@router.get("/stock-on-hand", response_model=StockOnHandReport, operation_id="reports_stock_on_hand")
def stock_on_hand(scoped: Annotated[Scoped, _scope("stock-on-hand")], session: TenantSession) -> Response:
    return _json({"items": reports.stock_on_hand(session, *scoped)})


@router.get("/inventory-movement", response_model=MovementReport, operation_id="reports_inventory_movement")
def inventory_movement(scoped: Annotated[Scoped, _scope("inventory-movement")], session: TenantSession) -> Response:
    return _json({"items": reports.inventory_movement(session, *scoped)})


@router.get("/receiving-summary", response_model=ReceivingReport, operation_id="reports_receiving_summary")
def receiving_summary(scoped: Annotated[Scoped, _scope("receiving-summary")], session: TenantSession) -> Response:
    return _json({"items": reports.receiving_summary(session, *scoped)})


@router.get("/shrink-summary", response_model=ShrinkReport, operation_id="reports_shrink_summary")
def shrink_summary(scoped: Annotated[Scoped, _scope("shrink-summary")], session: TenantSession) -> Response:
    return _json({"items": reports.shrink_summary(session, *scoped)})


@router.get("/valuation", response_model=ValuationReport, operation_id="reports_valuation")
def valuation(scoped: Annotated[Scoped, _scope("valuation")], session: TenantSession) -> Response:
    rows, total = reports.valuation(session, *scoped)
    return _json({"items": rows, "total_value": total})
