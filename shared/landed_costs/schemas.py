"""Request and response shapes for landed costs (`POST /landed-costs`, `GET /landed-costs/{id}`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, Field

from shared.inventory.schemas import JobAccepted, LotId, PositiveCost, TenantInput, Timestamp
from shared.jobs.kinds import JobStatus
from shared.landed_costs.models import Target
from shared.schemas import DecimalStr, ErrorRecord, UtcDatetime

Memo = Annotated[str, Field(max_length=500, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")]


class LandedCostCreate(TenantInput):
    lot_id: LotId
    amount: PositiveCost
    allocated_at: Timestamp
    memo: Memo | None = None


class LandedCostPayload(BaseModel):
    landed_cost_id: str
    lot_id: str
    amount: Decimal
    allocated_at: Timestamp


class LandedCostAccepted(JobAccepted):
    landed_cost_id: str


class LandedCostLineOut(BaseModel):
    line: int
    target: Target
    run_id: str | None
    quantity: DecimalStr
    unit_cost: DecimalStr
    amount: DecimalStr


class LandedCostOut(BaseModel):
    """A landed cost and its job's status; `lines` (where it went) once the job has completed."""

    id: str
    job_id: str
    lot_id: str
    sku: str | None = Field(description="the lot's SKU, once the job has executed")
    amount: DecimalStr
    allocated_at: UtcDatetime
    memo: str | None
    status: JobStatus
    error: ErrorRecord | None
    created_at: UtcDatetime
    lines: list[LandedCostLineOut]
