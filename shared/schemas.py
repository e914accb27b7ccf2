"""Schema building blocks shared by every domain: decimals as strings, UTC timestamps, list pages, and the
error envelope every non-2xx answer carries (contract section 2)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

# What a decimal looks like in a response: plain digits, never an exponent (`format(v, "f")`).
DECIMAL_PATTERN = r"^-?\d+(\.\d+)?$"

DecimalStr = Annotated[
    Decimal,
    PlainSerializer(lambda v: format(v, "f"), return_type=str),
    WithJsonSchema(
        {"type": "string", "pattern": DECIMAL_PATTERN, "examples": ["1234.5000"], "description": "exact decimal"},
        mode="serialization",
    ),
]
UtcDatetime = Annotated[
    datetime,
    PlainSerializer(lambda v: v.astimezone(UTC).isoformat().replace("+00:00", "Z"), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "description": "UTC"}, mode="serialization"),
]

T = TypeVar("T")


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


# --- the error envelope -------------------------------------------------------------------------------------


class ErrorCode(StrEnum):
    """The contract's error codes (`shared.errors.STATUS_BY_CODE` maps each to its HTTP status)."""

    UNAUTHENTICATED = "UNAUTHENTICATED"
    PLAN_LIMIT_EXCEEDED = "PLAN_LIMIT_EXCEEDED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    CONFLICT = "CONFLICT"
    VALIDATION_FAILED = "VALIDATION_FAILED"
    UNAVAILABLE = "UNAVAILABLE"


class ErrorDetail(BaseModel):
    """One finding. `row` is the 1-based data row (CSV: the first row after the header; JSON: array index + 1);
    some errors add their own fields (a plan limit: `limit`, `used`, `max`; a blocked rollback: `run_id`)."""

    model_config = ConfigDict(extra="allow")

    row: int | None = None
    field: str | None = None
    message: str | None = None


class ErrorBody(BaseModel):
    code: ErrorCode
    reason: str | None = Field(description="a finer cause, e.g. INSUFFICIENT_STOCK, RUN_IN_PROGRESS, BAD_KEY")
    message: str
    details: list[ErrorDetail]
    request_id: str | None = Field(description="the request's X-Request-ID")


class ErrorEnvelope(BaseModel):
    """Every non-2xx answer."""

    error: ErrorBody


# A job's (or run's, count's, export's) recorded failure: the envelope's fields, as the worker stored them.
# Kept a plain mapping when read back (older rows may lack a field); the schema documents its shape.
ErrorRecord = Annotated[
    dict[str, Any],
    WithJsonSchema(
        {
            "type": "object",
            "description": "the failure as {code, reason, message, details} (code: a contract code, or INTERNAL)",
            "properties": {
                "code": {"type": "string"},
                "reason": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object", "additionalProperties": True}},
            },
            "additionalProperties": True,
        }
    ),
]
