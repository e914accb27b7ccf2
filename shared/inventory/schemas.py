"""Request and response shapes for master data, receipts and cycle counts.

Decimal inputs accept JSON numbers or strings with at most 4 decimal places (never rounded, never through
binary floating point when the route parses with `parse_float=str`); responses carry decimal strings.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from shared.base import text_limit
from shared.decimals import COST_SCALE, QTY_SCALE, parse_scaled, to_decimal
from shared.inventory.models import Category, Item
from shared.jobs.kinds import JobKind, JobStatus
from shared.ledger.models import Lot
from shared.schemas import DecimalStr, ErrorRecord, Schema, UtcDatetime
from shared.tenants.models import Tenant

# No control characters (PostgreSQL text cannot hold NUL; the others are never meaningful in these fields).
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
MAX_LINES = 10_000
# Ceilings that keep quantity x unit cost inside NUMERIC(28, 8) and every sum inside NUMERIC(20, 4).
MAX_QUANTITY = Decimal(10) ** 10
MAX_UNIT_COST = Decimal(10) ** 9


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


# Each text field's maximum is its column's length (shared.base.text_limit).
NAME_MAX, SKU_MAX, LOT_ID_MAX = text_limit(Category, "name"), text_limit(Item, "sku"), text_limit(Lot, "lot_id")
ID_MAX, TENANT_ID_MAX = text_limit(Category, "id"), text_limit(Tenant, "id")
Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX, pattern=_PRINTABLE), AfterValidator(_not_blank)]
Sku = Annotated[str, Field(min_length=1, max_length=SKU_MAX, pattern=_PRINTABLE), AfterValidator(_not_blank)]
LotId = Annotated[str, Field(min_length=1, max_length=LOT_ID_MAX, pattern=_PRINTABLE), AfterValidator(_not_blank)]
RefId = Annotated[str, Field(min_length=1, max_length=ID_MAX, pattern=_PRINTABLE)]
TenantRef = Annotated[str, Field(min_length=1, max_length=TENANT_ID_MAX, pattern=_PRINTABLE)]


def _decimal(scale: int) -> Any:
    def parse(value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
            raise ValueError("must be a number or a decimal string")
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError("must be a finite number")
            text = repr(value)  # the shortest text that round-trips: exact for up to 15 significant digits
        elif isinstance(value, Decimal):
            if not value.is_finite():
                raise ValueError("must be a finite number")
            text = format(value, "f")
        else:
            text = str(value)
        if len(text) > 40:
            raise ValueError("too many digits")
        try:
            return to_decimal(parse_scaled(text, scale), scale)
        except ValueError as exc:
            raise ValueError(f"must be a plain decimal number with at most {scale} decimal places") from exc

    return BeforeValidator(parse)


def _utc(value: datetime) -> datetime:
    try:
        converted = value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise ValueError("timestamp out of range") from exc
    if not 1900 <= converted.year <= 9999:
        raise ValueError("timestamp out of range (years 1900-9999)")
    return converted


def _decimal_schema(scale: int, maximum: Decimal, *, positive: bool) -> WithJsonSchema:
    """What `_decimal` accepts, as JSON Schema: a number, or a plain decimal string (no exponent)."""
    lower = {"exclusiveMinimum": 0} if positive else {"minimum": 0}
    return WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", **lower, "maximum": int(maximum)},
                {
                    "type": "string",
                    "maxLength": 40,
                    "pattern": rf"^\s*\+?(\d+(\.\d{{0,{scale}}}0*)?|\.\d{{1,{scale}}}0*)\s*$",
                },
            ],
            "description": f"a decimal with at most {scale} decimal places, as a JSON number or a string",
            "examples": ["12.5000"],
        },
        mode="validation",
    )


Timestamp = Annotated[AwareDatetime, AfterValidator(_utc)]
PositiveQuantity = Annotated[
    Decimal, _decimal(QTY_SCALE), Field(gt=0, le=MAX_QUANTITY), _decimal_schema(QTY_SCALE, MAX_QUANTITY, positive=True)
]
NonNegativeQuantity = Annotated[
    Decimal, _decimal(QTY_SCALE), Field(ge=0, le=MAX_QUANTITY), _decimal_schema(QTY_SCALE, MAX_QUANTITY, positive=False)
]
UnitCostIn = Annotated[
    Decimal,
    _decimal(COST_SCALE),
    Field(ge=0, le=MAX_UNIT_COST),
    _decimal_schema(COST_SCALE, MAX_UNIT_COST, positive=False),
]
PositiveCost = Annotated[
    Decimal,
    _decimal(COST_SCALE),
    Field(gt=0, le=MAX_UNIT_COST),
    _decimal_schema(COST_SCALE, MAX_UNIT_COST, positive=True),
]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The tenant comes from the key; a body may repeat it, and a differing one is refused (403).
    tenant_id: TenantRef | None = None


TenantInput = _Input  # the base of every request body, for other domains' bodies


# --- master data --------------------------------------------------------------------------------------


class CategoryCreate(_Input):
    name: Name


class CategoryUpdate(_Input):
    name: Name | None = None


class HubCreate(_Input):
    name: Name


class HubUpdate(_Input):
    name: Name | None = None


class BinCreate(_Input):
    hub_id: RefId
    name: Name


class BinUpdate(_Input):
    name: Name | None = None
    hub_id: RefId | None = None  # identity: accepted only unchanged


class VendorCreate(_Input):
    name: Name


class VendorUpdate(_Input):
    name: Name | None = None


class ItemCreate(_Input):
    sku: Sku
    name: Name
    category_id: RefId
    default_bin_id: RefId | None = None


class ItemUpdate(_Input):
    sku: Sku | None = None  # identity: accepted only unchanged
    name: Name | None = None
    category_id: RefId | None = None
    default_bin_id: RefId | None = None  # null clears it


class CategoryOut(Schema):
    id: str
    name: str
    created_at: UtcDatetime


class HubOut(Schema):
    id: str
    name: str
    created_at: UtcDatetime


class BinOut(Schema):
    id: str
    hub_id: str
    name: str
    created_at: UtcDatetime


class VendorOut(Schema):
    id: str
    name: str
    enabled: bool
    created_at: UtcDatetime


class ItemOut(Schema):
    id: str
    sku: str
    name: str
    category_id: str
    default_bin_id: str | None
    created_at: UtcDatetime


# --- receiving ----------------------------------------------------------------------------------------


class ReceiptLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    bin_id: RefId | None = None
    quantity: PositiveQuantity
    unit_cost: UnitCostIn
    freight_cost_per_unit: UnitCostIn = Decimal("0.0000")
    lot_id: LotId | None = None


class ReceiptCreate(_Input):
    vendor_id: RefId
    received_at: Timestamp
    lines: list[ReceiptLineIn] = Field(min_length=1, max_length=MAX_LINES)


class ReceiptPayload(BaseModel):
    """What the receipt job carries: the validated body, decimals as strings."""

    vendor_id: str
    received_at: Timestamp
    lines: list[ReceiptLineIn]


class JobAccepted(BaseModel):
    """A `202` answer: the job that will do the work."""

    job_id: str
    kind: JobKind
    status: JobStatus


# --- cycle counts -------------------------------------------------------------------------------------


class CountLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    counted_quantity: NonNegativeQuantity
    unit_cost: UnitCostIn | None = None  # values a gain; default: the SKU's latest receipt cost


class CountCreate(_Input):
    bin_id: RefId
    counted_at: Timestamp
    lines: list[CountLineIn] = Field(min_length=1, max_length=MAX_LINES)


class CountPayload(BaseModel):
    count_id: str
    bin_id: str
    counted_at: Timestamp
    lines: list[CountLineIn]


class CountAccepted(JobAccepted):
    count_id: str


class CountLineOut(BaseModel):
    line: int
    sku: str
    counted_quantity: DecimalStr
    expected_quantity: DecimalStr | None
    difference: DecimalStr | None
    unit_cost: DecimalStr | None
    amount: DecimalStr | None


class CountOut(BaseModel):
    id: str
    job_id: str
    bin_id: str
    counted_at: UtcDatetime
    status: JobStatus
    error: ErrorRecord | None
    created_at: UtcDatetime
    lines: list[CountLineOut]


class CountSummary(BaseModel):
    id: str
    job_id: str
    bin_id: str
    counted_at: UtcDatetime
    status: JobStatus
    created_at: UtcDatetime
