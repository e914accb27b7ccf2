"""Report names, parameters and rows. Quantities are strings with 4 decimals, values and unit costs as the
ledger stores them (values 8 decimals, unit costs 4), so a report row is exactly what the ledger says.

Time parameters are business time (`occurred_at`). Each accepts an ISO date (`2024-07-01`) or an ISO
date-time (`2024-07-01T10:00:00Z`; without a zone it is UTC):
- `as_of` (stock-on-hand, valuation): events at or before that instant count; a date means the whole day.
  Omitted: every event in the ledger.
- `from` / `to` (inventory-movement, receiving-summary, shrink-summary): the window `[from, to)`; a date
  means the start of that day (UTC), so `from=2024-07-01&to=2024-08-01` is July. Omitted: unbounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.base import text_limit
from shared.errors import ValidationFailed
from shared.ledger.models import Lot

ReportName = Literal["stock-on-hand", "inventory-movement", "receiving-summary", "shrink-summary", "valuation"]
REPORTS: tuple[str, ...] = get_args(ReportName)
POINT_IN_TIME = frozenset({"stock-on-hand", "valuation"})
TIME_PARAMS: dict[str, tuple[str, ...]] = {
    name: ("as_of",) if name in POINT_IN_TIME else ("from", "to") for name in REPORTS
}
MAX_TEXT = 64
# Filters hold ids and SKUs: their columns' lengths (every id column is as long as a lot's bin_id).
ID_MAX, SKU_MAX = text_limit(Lot, "bin_id"), text_limit(Lot, "sku")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class Moment:
    """A parsed time parameter: a whole UTC day or one instant."""

    day: date | None
    instant: datetime | None

    @classmethod
    def parse(cls, text: str) -> Moment:
        raw = text.strip()
        if len(raw) == 10:
            return cls(day=date.fromisoformat(raw), instant=None)
        return cls(day=None, instant=_utc(datetime.fromisoformat(raw)))

    @property
    def text(self) -> str:
        """The canonical spelling, so equal parameters hash equally (`...Z`, microseconds only if any)."""
        if self.day is not None:
            return self.day.isoformat()
        assert self.instant is not None
        return self.instant.isoformat().replace("+00:00", "Z")

    @property
    def start(self) -> datetime:
        """The first instant this moment names (a date: its midnight, UTC)."""
        if self.day is not None:
            return datetime.combine(self.day, time(), UTC)
        assert self.instant is not None
        return self.instant

    @property
    def end_exclusive(self) -> datetime:
        """The first instant after this moment (a date: the next midnight). PostgreSQL keeps microseconds."""
        if self.day is not None:
            return datetime.combine(self.day, time(), UTC) + timedelta(days=1)
        assert self.instant is not None
        return self.instant + timedelta(microseconds=1)


def _moment(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        moment = Moment.parse(value)
        _ = moment.start, moment.end_exclusive  # out-of-range edges (year 9999) fail here, not in SQL
    except (ValueError, OverflowError) as exc:
        raise ValueError("must be an ISO 8601 date (2024-07-01) or date-time (2024-07-01T10:00:00Z)") from exc
    return moment.text


def _identifier(value: str | None) -> str | None:
    if value is not None and any(ord(c) < 32 for c in value):
        raise ValueError("must not contain control characters")
    return value


class ReportParams(BaseModel):
    """The parameters of one report request; also the stored, hashed `params` of an export."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    as_of: str | None = Field(default=None, max_length=MAX_TEXT)
    from_: str | None = Field(default=None, alias="from", max_length=MAX_TEXT)
    to: str | None = Field(default=None, max_length=MAX_TEXT)
    hub_id: str | None = Field(default=None, min_length=1, max_length=ID_MAX)
    sku: str | None = Field(default=None, min_length=1, max_length=SKU_MAX)

    @field_validator("as_of", "from_", "to")
    @classmethod
    def _check_moment(cls, value: str | None) -> str | None:
        return _moment(value)

    @field_validator("hub_id", "sku")
    @classmethod
    def _check_identifier(cls, value: str | None) -> str | None:
        return _identifier(value)

    def moment(self, name: str) -> Moment | None:
        value = {"as_of": self.as_of, "from": self.from_, "to": self.to}[name]
        return Moment.parse(value) if value is not None else None

    def canonical(self) -> dict[str, str]:
        """The parameters as stored on an export: only those given, in canonical spelling."""
        return self.model_dump(by_alias=True, exclude_none=True)


def parse_params(report: str, raw: dict[str, Any]) -> ReportParams:
    """Validate parameters for one report: shapes, dates, and that each applies to this report."""
    try:
        params = ReportParams.model_validate(raw)
    except ValidationError as exc:
        details = [
            {"field": ".".join(str(p) for p in e["loc"]) or "params", "message": e["msg"]} for e in exc.errors()[:100]
        ]
        raise ValidationFailed("the report parameters are invalid", reason="BAD_REQUEST", details=details) from exc
    given = params.canonical()
    misplaced = [name for name in ("as_of", "from", "to") if name in given and name not in TIME_PARAMS.get(report, ())]
    if misplaced:
        raise ValidationFailed(
            f"{', '.join(misplaced)} does not apply to {report}",
            reason="BAD_REQUEST",
            details=[
                {"field": name, "message": f"{report} takes {' and '.join(TIME_PARAMS[report])}"} for name in misplaced
            ],
        )
    start, end = params.moment("from"), params.moment("to")
    if start is not None and end is not None and start.start > end.start:
        raise ValidationFailed(
            "'from' must not be after 'to'",
            reason="BAD_REQUEST",
            details=[{"field": "from", "message": "the window is [from, to)"}],
        )
    return params


# --- rows ---------------------------------------------------------------------------------------------
# The service returns rows as dicts in these shapes (the query renders the decimals); the models document
# the answers and fix the column order of exports.

Qty = Annotated[str, Field(pattern=r"^-?[0-9]+\.[0-9]{4}$", examples=["1234.5000"], description="4 decimals")]
Cost = Annotated[str, Field(pattern=r"^-?[0-9]+\.[0-9]{4}$", examples=["10.7500"], description="4 decimals")]
Value = Annotated[str, Field(pattern=r"^-?[0-9]+\.[0-9]{8}$", examples=["13270.87500000"], description="8 decimals")]


class StockOnHandRow(BaseModel):
    sku: str
    item_name: str | None
    hub_id: str | None
    bin_id: str | None
    lot_id: str
    quantity: Qty
    unit_cost: Cost
    value: Value


class MovementRow(BaseModel):
    sku: str
    opening: Qty
    received: Qty
    issued: Qty
    adjusted: Qty
    reversed: Qty
    closing: Qty
    closing_value: Value


class ReceivingRow(BaseModel):
    vendor_id: str | None
    sku: str
    receipts: int
    quantity: Qty
    value: Value


class ShrinkRow(BaseModel):
    sku: str
    bin_id: str | None
    shrink_quantity: Qty
    shrink_value: Value
    gain_quantity: Qty
    gain_value: Value
    net_quantity: Qty
    net_value: Value


class ValuationRow(BaseModel):
    sku: str
    quantity: Qty
    value: Value
    average_unit_cost: Cost


ROW_MODELS: dict[str, type[BaseModel]] = {
    "stock-on-hand": StockOnHandRow,
    "inventory-movement": MovementRow,
    "receiving-summary": ReceivingRow,
    "shrink-summary": ShrinkRow,
    "valuation": ValuationRow,
}
COLUMNS: dict[str, tuple[str, ...]] = {name: tuple(model.model_fields) for name, model in ROW_MODELS.items()}


class StockOnHandReport(BaseModel):
    items: list[StockOnHandRow]


class MovementReport(BaseModel):
    items: list[MovementRow]


class ReceivingReport(BaseModel):
    items: list[ReceivingRow]


class ShrinkReport(BaseModel):
    items: list[ShrinkRow]


class ValuationReport(BaseModel):
    items: list[ValuationRow]
    total_value: Value
