"""Request and response shapes for returns (`POST /returns`, `GET /returns/{id}`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal, Self

from pydantic import BaseModel, Field, model_validator

from shared.inventory.schemas import JobAccepted, LotId, PositiveQuantity, TenantInput, Timestamp
from shared.jobs.kinds import JobStatus
from shared.returns.models import ReturnKind
from shared.schemas import DecimalStr, ErrorRecord, UtcDatetime


class ReturnCreate(TenantInput):
    """`kind: "sale"` names the sale (`sale_id`); `kind: "purchase"` names the lot (`lot_id`)."""

    kind: Literal["sale", "purchase"]
    sale_id: LotId | None = Field(default=None, description="the costed sale coming back (kind sale)")
    lot_id: LotId | None = Field(
        default=None, description="the lot the units go back to the vendor from (kind purchase)"
    )
    quantity: PositiveQuantity
    returned_at: Timestamp

    @model_validator(mode="after")
    def _names_its_subject(self) -> Self:
        if self.kind == "sale" and (self.sale_id is None or self.lot_id is not None):
            raise ValueError("a sale return names sale_id (and no lot_id)")
        if self.kind == "purchase" and (self.lot_id is None or self.sale_id is not None):
            raise ValueError("a purchase return names lot_id (and no sale_id)")
        return self


class ReturnPayload(BaseModel):
    """What the return job carries."""

    return_id: str
    kind: ReturnKind
    sale_id: str | None
    lot_id: str | None
    quantity: Decimal
    returned_at: Timestamp


class ReturnAccepted(JobAccepted):
    return_id: str


class ReturnLineOut(BaseModel):
    line: int
    source_lot_id: str
    lot_id: str
    quantity: DecimalStr
    unit_cost: DecimalStr
    amount: DecimalStr


class ReturnOut(BaseModel):
    """A return and its job's status; `lines` (the ledgered slices) once the job has completed."""

    id: str
    job_id: str
    kind: ReturnKind
    sale_id: str | None
    lot_id: str | None
    run_id: str | None = Field(description="a sale return: the live run the sale was costed in, once executed")
    sku: str | None = Field(description="once the job has executed")
    quantity: DecimalStr
    returned_at: UtcDatetime
    status: JobStatus
    error: ErrorRecord | None
    amount: DecimalStr | None = Field(description="the ledgered value: positive back into stock, negative out")
    created_at: UtcDatetime
    lines: list[ReturnLineOut]
