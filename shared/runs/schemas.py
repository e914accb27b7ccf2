from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas import DecimalStr, Schema, UtcDatetime

# A row's field: a JSON scalar (numbers arrive as their literal text or as ints, never as floats).
RowValue = str | int | bool | None
Row = dict[Annotated[str, Field(max_length=64)], RowValue]


class RunCreate(BaseModel):
    """The runbook's JSON body. Rows stay loose here: their fields are validated row by row in the worker,
    so every problem of a file is reported together with its row number."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = None
    mode: Literal["fifo"] = "fifo"
    dry_run: bool = False
    sales_data: list[Row] = Field(max_length=5_000_000)
    lots_data: list[Row] = Field(default_factory=list, max_length=5_000_000)


class RunAccepted(BaseModel):
    run_id: str
    job_id: str
    status: str


class RunOut(Schema):
    run_id: str = Field(validation_alias="id")
    job_id: str
    tenant_id: str
    status: str
    mode: str
    dry_run: bool
    sales_count: int
    lots_count: int
    total_quantity: DecimalStr
    total_cogs: DecimalStr
    validation_errors_count: int
    error: dict[str, Any] | None
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
    rolled_back_by: str | None


class SaleOut(Schema):
    sale_id: str
    sku: str
    sale_date: UtcDatetime
    quantity: DecimalStr
    cogs: DecimalStr


class AllocationOut(Schema):
    sale_id: str
    lot_id: str
    sku: str
    quantity: DecimalStr
    unit_cost: DecimalStr
    amount: DecimalStr


class ValidationErrorOut(Schema):
    row: int
    field: str
    reason: str
    message: str
    file: str


class RollbackAccepted(BaseModel):
    run_id: str
    job_id: str
    status: str
    cascade: bool
