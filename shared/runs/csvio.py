"""Reading sales and lots for a run, from CSV streams or JSON records, into engine batches.

Both sources hand the same builders chunks of string columns, so a CSV file and the equivalent JSON
body give identical batches and errors; every problem is reported (up to ``MAX_ERRORS`` per file)
with its 1-based data row. The stages live beside this module: ``csv_reader`` (bytes to columns),
``columns`` (vectorised number and date parsing) and ``validation`` (checks, errors and batches).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import BinaryIO, Final, Literal

import numpy as np

from shared.runs.columns import parse_dates
from shared.runs.csv_reader import read_csv
from shared.runs.validation import (
    CHUNK_ROWS,
    INVALID,
    LOTS_COLUMNS,
    MAX_ERRORS,
    SALES_COLUMNS,
    TENANT_COLUMN,
    Builder,
    Chunk,
    LotsBuilder,
    ParsedLots,
    ParsedSales,
    SalesBuilder,
)

__all__ = [
    "CHUNK_ROWS",
    "LOTS_COLUMNS",
    "MAX_ERRORS",
    "SALES_COLUMNS",
    "ParsedLots",
    "ParsedSales",
    "lots_from_records",
    "parse_lots_csv",
    "parse_sales_csv",
    "parse_timestamp",
    "sales_from_records",
    "template_csv",
]


def template_csv(kind: Literal["sales", "lots"]) -> str:
    """The header row of an upload template."""
    columns = SALES_COLUMNS if kind == "sales" else LOTS_COLUMNS
    return ",".join(columns) + "\n"


def parse_sales_csv(stream: BinaryIO) -> ParsedSales:
    builder = SalesBuilder(typed=False)
    read_csv(stream, builder)
    return builder.finish()


def parse_lots_csv(stream: BinaryIO) -> ParsedLots:
    builder = LotsBuilder(typed=False)
    read_csv(stream, builder)
    return builder.finish()


def sales_from_records(records: Sequence[object]) -> ParsedSales:
    """Sales from a JSON body's ``sales_data`` (a list of objects); row = array index + 1."""
    builder = SalesBuilder(typed=True)
    _read_records(records, builder)
    return builder.finish()


def lots_from_records(records: Sequence[object]) -> ParsedLots:
    """Lots from a JSON body's ``lots_data``; row = array index + 1."""
    builder = LotsBuilder(typed=True)
    _read_records(records, builder)
    return builder.finish()


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO 8601 date or date-time (naive = UTC) into an aware UTC ``datetime``."""
    micros, ok = parse_dates([text.strip()])
    if not ok[0]:
        raise ValueError(f"not an ISO 8601 date: {text!r}")
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros[0]))


# ---------------------------------------------------------------------------------------------
# JSON records as string columns

_TEXT_FIELDS: Final = frozenset({"sale_id", "lot_id", "sku", TENANT_COLUMN})
_DATE_FIELDS: Final = frozenset({"sale_date", "received_date"})


def _read_records(records: Sequence[object], builder: Builder) -> None:
    for start in range(0, len(records), CHUNK_ROWS):
        part = [record if isinstance(record, dict) else {} for record in records[start : start + CHUNK_ROWS]]
        columns = {column: [_json_text(record.get(column), column) for record in part] for column in builder.columns}
        rows = np.arange(start + 1, start + len(part) + 1, dtype=np.int64)
        builder.add_chunk(Chunk(rows, columns, is_blank=None))


def _json_text(value: object, column: str) -> str:
    """The text a JSON value stands for; wrong types become ``INVALID``, null/absent become ""."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return INVALID
    if column in _DATE_FIELDS:
        return value.isoformat() if isinstance(value, datetime) else INVALID
    if isinstance(value, int):
        return str(value)
    if column in _TEXT_FIELDS:
        return INVALID
    if isinstance(value, float):
        # repr gives the shortest text that round-trips, so 10.1 stays "10.1", never 10.0999...
        return repr(value) if math.isfinite(value) else INVALID
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else INVALID
    return INVALID
