"""COGS runs as API clients see them: the JSON and multipart requests, the run, its per-sale results, slices and
validation errors, and the 202 answers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from shared.jobs.kinds import JobStatus
from shared.runs.models import RunStatus
from shared.schemas import DecimalStr, ErrorRecord, Schema, UtcDatetime

# The costing methods (shared.costing.Method); a run that names none takes the tenant's default.
RunMode = Literal["fifo", "lifo", "moving_average"]

# A row's field: a JSON scalar (numbers arrive as their literal text or as ints, never as floats).
RowValue = str | int | bool | None
Row = dict[Annotated[str, Field(max_length=64)], RowValue]

# The rows as the runbook defines them. The model keeps them loose (each row is checked in the worker, so every
# problem of a file is reported together with its row number); the schema says what a valid row holds.
_TEXT: dict[str, Any] = {"type": "string", "maxLength": 200}
_DECIMAL: dict[str, Any] = {
    "anyOf": [{"type": "number"}, {"type": "string", "pattern": r"^\s*[+-]?(\d+\.?\d*|\.\d+)\s*$"}],
    "description": "a decimal, as a number or a string (at most 4 decimal places)",
}
_DATE: dict[str, Any] = {
    "type": "string",
    "description": "ISO 8601 date or date-time (UTC if no zone)",
    "examples": ["2024-07-20", "2024-07-20T10:00:00Z"],
}
_TENANT: dict[str, Any] = {"type": "string", "description": "optional; must be the caller's tenant"}
# Other columns are allowed (and ignored) as long as they are scalars with short names.
_OTHER: dict[str, Any] = {
    "propertyNames": {"maxLength": 64},
    "additionalProperties": {"anyOf": [{"type": t} for t in ("string", "number", "boolean", "null")]},
}
SALE_ROW: dict[str, Any] = {
    "type": "object",
    "properties": {"sale_id": _TEXT, "sku": _TEXT, "sale_date": _DATE, "quantity_sold": _DECIMAL, "tenant_id": _TENANT},
    "required": ["sale_id", "sku", "sale_date", "quantity_sold"],
    **_OTHER,
}
LOT_ROW: dict[str, Any] = {
    "type": "object",
    "properties": {
        "lot_id": _TEXT,
        "sku": _TEXT,
        "received_date": _DATE,
        "original_quantity": _DECIMAL,
        "remaining_quantity": _DECIMAL,
        "unit_price": _DECIMAL,
        "freight_cost_per_unit": _DECIMAL,
        "tenant_id": _TENANT,
    },
    "required": ["lot_id", "sku", "received_date", "original_quantity", "remaining_quantity", "unit_price"],
    **_OTHER,
}


class RunCreate(BaseModel):
    """The runbook's JSON body. Rows stay loose here: their fields are validated row by row in the worker,
    so every problem of a file is reported together with its row number."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = None
    mode: RunMode | None = Field(default=None, description="costing method; absent or null: the tenant's default")
    dry_run: bool = False
    sales_data: list[Row] = Field(max_length=5_000_000, json_schema_extra={"items": SALE_ROW})
    lots_data: list[Row] = Field(default_factory=list, max_length=5_000_000, json_schema_extra={"items": LOT_ROW})


_CSV_FILE = {"type": "string", "format": "binary", "contentMediaType": "text/csv"}


def _form_schema(schema: dict[str, Any]) -> None:
    # A form field is absent or present; it has no null and no default to send.
    for name in ("lots_file", "tenant_id", "mode"):
        schema["properties"][name].pop("default", None)


class RunUpload(BaseModel):
    """The multipart form of `POST /runs` (documentation only: the route reads the form itself). Header rows:
    `GET /files/templates/sales` and `GET /files/templates/lots`."""

    model_config = ConfigDict(json_schema_extra=_form_schema)

    sales_file: Annotated[bytes, WithJsonSchema({**_CSV_FILE, "description": "the sales CSV"})]
    lots_file: Annotated[bytes, WithJsonSchema({**_CSV_FILE, "description": "the lots CSV"})] = b""
    mode: Annotated[
        RunMode | None,
        WithJsonSchema(
            {
                "type": "string",
                "enum": ["fifo", "lifo", "moving_average"],
                "description": "absent: the tenant's default",
            }
        ),
    ] = None
    dry_run: bool = False
    tenant_id: Annotated[str | None, WithJsonSchema({"type": "string", "description": _TENANT["description"]})] = None


class RunAccepted(BaseModel):
    run_id: str
    job_id: str
    status: RunStatus


class RunOut(Schema):
    run_id: str = Field(validation_alias="id")
    job_id: str
    tenant_id: str
    status: RunStatus
    mode: RunMode
    dry_run: bool
    sales_count: int
    lots_count: int
    total_quantity: DecimalStr
    total_cogs: DecimalStr
    validation_errors_count: int
    error: ErrorRecord | None
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
    status: JobStatus
    cascade: bool


class RepostRollbackAccepted(BaseModel):
    repost_job_id: str = Field(description="the repost being rolled back")
    job_id: str = Field(description="the rollback's own job (kind `repost`), visible in GET /jobs")
    status: JobStatus


class ValuationSettingsOut(BaseModel):
    default_method: RunMode


class ValuationSettingsUpdate(BaseModel):
    """The tenant's default costing method, for runs accepted from now on that name none."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = None
    default_method: RunMode


class SkuMethodOut(Schema):
    sku: str
    method: RunMode
    since_run_id: str | None = None
    updated_at: UtcDatetime


class SkuMethodSwitched(SkuMethodOut):
    previous_method: RunMode | None


class SkuMethodUpdate(BaseModel):
    """Hold a SKU to a costing method from now on: an audited switch. Without `revalue` it never revalues stock
    on hand (409 REVALUATION_REQUIRED when it would); with it, a moving-average SKU whose pool carries value
    beyond its lots' own costs is revalued to them by a `revaluation` job (202; docs/costing.md)."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = None
    method: RunMode
    revalue: bool = Field(
        default=False,
        description=(
            "post the revaluation a switch away from moving average needs (202 with a `revaluation` job); "
            "without it such a switch is refused with 409 REVALUATION_REQUIRED"
        ),
    )


class RevaluationPayload(BaseModel):
    """A `revaluation` job: switch `sku` to `method`, revaluing its stock on hand to its lots' own costs."""

    sku: str
    method: RunMode
    requested_at: UtcDatetime


class SkuRevaluationAccepted(BaseModel):
    """A `202` answer to a switch with `revalue`: the job that will revalue and switch the SKU, and the carried
    value seen at intake (the job re-reads it under the tenant's fence)."""

    job_id: str
    kind: str
    status: JobStatus
    sku: str
    method: RunMode
    previous_method: RunMode | None
    carried_value: DecimalStr
