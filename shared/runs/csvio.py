"""Reading sales and lots for a run, from CSV streams or JSON records, into engine batches.

Both sources go through the same column-wise validation, so a CSV file and the equivalent JSON body
give identical batches and errors. Every problem is reported (up to ``MAX_ERRORS`` per file) with its
1-based data row. Parsing is vectorised per chunk of rows: numbers and ISO dates in their common
shapes are decoded with NumPy, and only unusual values fall back to per-value Python parsing.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import compress, islice, repeat
from operator import itemgetter, not_
from typing import BinaryIO, Final, Literal

import numpy as np
import numpy.typing as npt

from shared.decimals import COST_SCALE, MAX_SCALED, QTY_SCALE, format_scaled, parse_scaled
from shared.runs.fifo import Int64Array, LotsBatch, RowError, SalesBatch

BoolArray = npt.NDArray[np.bool_]

SALES_COLUMNS: Final = ("sale_id", "sku", "sale_date", "quantity_sold")
LOTS_COLUMNS: Final = (
    "lot_id",
    "sku",
    "received_date",
    "original_quantity",
    "remaining_quantity",
    "unit_price",
    "freight_cost_per_unit",
)
TENANT_COLUMN: Final = "tenant_id"
OPTIONAL_LOTS_COLUMNS: Final = frozenset({"freight_cost_per_unit"})

MAX_ERRORS: Final = 1000
CHUNK_ROWS: Final = 65_536

MISSING_COLUMN: Final = "MISSING_COLUMN"
MISSING_VALUE: Final = "MISSING_VALUE"
BAD_NUMBER: Final = "BAD_NUMBER"
BAD_DATE: Final = "BAD_DATE"
NON_POSITIVE_QUANTITY: Final = "NON_POSITIVE_QUANTITY"
REMAINING_EXCEEDS_ORIGINAL: Final = "REMAINING_EXCEEDS_ORIGINAL"
NEGATIVE_COST: Final = "NEGATIVE_COST"
DUPLICATE_ID: Final = "DUPLICATE_ID"
BAD_CSV: Final = "BAD_CSV"

# A JSON value of the wrong type (a bool, list, object, ...) becomes this marker, which no parser
# accepts, so it is reported like any other bad value.
_INVALID: Final = "\x00<invalid value>"

_NAIVE_EPOCH: Final = datetime(1970, 1, 1)
_MICROSECOND: Final = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class ParsedSales:
    """Valid sales as a batch, every problem found, and the tenant ids the input named."""

    batch: SalesBatch
    errors: list[RowError]
    tenant_ids: set[str]
    row_count: int  # data rows read, valid or not (blank CSV lines excluded)


@dataclass(frozen=True, slots=True)
class ParsedLots:
    """Valid lots as a batch (quantity = remaining, unit cost = price + freight) plus their attributes.

    ``original_quantity``, ``unit_price`` and ``freight`` (scaled 10**4) align with the batch rows.
    """

    batch: LotsBatch
    original_quantity: Int64Array
    unit_price: Int64Array
    freight: Int64Array
    errors: list[RowError]
    tenant_ids: set[str]
    row_count: int


def template_csv(kind: Literal["sales", "lots"]) -> str:
    """The header row of an upload template."""
    columns = SALES_COLUMNS if kind == "sales" else LOTS_COLUMNS
    return ",".join(columns) + "\n"


def parse_sales_csv(stream: BinaryIO) -> ParsedSales:
    builder = _SalesBuilder()
    _read_csv(stream, builder)
    return builder.finish()


def parse_lots_csv(stream: BinaryIO) -> ParsedLots:
    builder = _LotsBuilder()
    _read_csv(stream, builder)
    return builder.finish()


def sales_from_records(records: Sequence[object]) -> ParsedSales:
    """Sales from a JSON body's ``sales_data`` (a list of objects); row = array index + 1."""
    builder = _SalesBuilder()
    _read_records(records, builder)
    return builder.finish()


def lots_from_records(records: Sequence[object]) -> ParsedLots:
    """Lots from a JSON body's ``lots_data``; row = array index + 1."""
    builder = _LotsBuilder()
    _read_records(records, builder)
    return builder.finish()


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO 8601 date or date-time (naive = UTC) into an aware UTC ``datetime``."""
    micros, ok = _parse_dates([text.strip()])
    if not ok[0]:
        raise ValueError(f"not an ISO 8601 date: {text!r}")
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros[0]))


# ---------------------------------------------------------------------------------------------
# Vectorised value parsing

UInt8Array = npt.NDArray[np.uint8]

_POW10_INT64: Final = np.array([10**e for e in range(18)], dtype=np.int64)
_MAX_NUMBER_CHARS: Final = 32
_DATE_WIDTH: Final = 32  # "YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM"
_MIN_MICROS: Final = (datetime(1, 1, 2) - _NAIVE_EPOCH) // _MICROSECOND
_MAX_MICROS: Final = (datetime(9999, 12, 30) - _NAIVE_EPOCH) // _MICROSECOND
_DAYS_IN_MONTH: Final = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def _lengths(values: list[str]) -> Int64Array:
    return np.fromiter(map(len, values), dtype=np.int64, count=len(values))


def _char_matrix(values: list[str], lengths: Int64Array, width: int) -> tuple[UInt8Array, Int64Array, BoolArray]:
    """ASCII codes as an (n, width) zero-padded matrix, the lengths, and which rows it holds exactly.

    Rows longer than ``width``, or holding non-ASCII characters or NUL, are left blank and flagged
    as not exact, for the caller's slow path.
    """
    n = len(values)
    exact = lengths <= width
    joined = "".join(values)
    if not joined.isascii():
        exact &= np.fromiter(map(str.isascii, values), dtype=bool, count=n)
    if "\x00" in joined:
        exact &= np.fromiter(("\x00" not in v for v in values), dtype=bool, count=n)
    if not exact.all():
        values = [v if keep else "" for v, keep in zip(values, exact.tolist(), strict=True)]
        lengths = np.where(exact, lengths, 0)
        joined = "".join(values)
    data = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
    matrix = np.zeros((n, width), dtype=np.uint8)
    if n == 0 or data.size == 0:
        return matrix, lengths, exact
    common = int(lengths[0])
    if (lengths == common).all():
        matrix[:, :common] = data.reshape(n, common)
    else:
        columns = np.arange(width)
        inside = columns < lengths[:, None]
        starts = np.cumsum(lengths) - lengths
        matrix[inside] = data[(starts[:, None] + columns)[inside]]
    return matrix, lengths, exact


def _parse_decimals(values: list[str], scale: int, lengths: Int64Array | None = None) -> tuple[Int64Array, BoolArray]:
    """Scaled integers for stripped decimal strings; ``ok`` is False for empty or invalid values."""
    n = len(values)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    if lengths is None:
        lengths = _lengths(values)
    width = max(1, min(int(lengths.max()), _MAX_NUMBER_CHARS))
    codes, lengths, exact = _char_matrix(values, lengths, width)
    columns = np.arange(width)
    inside = columns < lengths[:, None]
    first = codes[:, 0]
    is_digit = (codes >= ord("0")) & (codes <= ord("9"))
    is_dot = codes == ord(".")
    allowed = is_digit | is_dot | ~inside
    allowed[:, 0] |= (first == ord("+")) | (first == ord("-"))
    dots = is_dot.sum(axis=1)
    fast = exact & allowed.all(axis=1) & (dots <= 1) & is_digit.any(axis=1)
    dot_at = np.where(dots == 1, is_dot.argmax(axis=1), lengths)[:, None]
    # The power of ten each digit stands for once scaled: left of the point counts up from the point.
    power = np.where(columns < dot_at, dot_at - 1 - columns, dot_at - columns) + scale
    digit = np.where(is_digit, codes.astype(np.int64) - ord("0"), 0)
    # Non-zero digits below the scale (too precise) or at 10**18 and above (out of range) are left to
    # the exact slow path, which decides with a precise rule.
    fast &= ~((digit != 0) & ((power < 0) | (power > 17))).any(axis=1)
    value = (digit * _POW10_INT64[np.clip(power, 0, 17)]).sum(axis=1)
    value = np.where(first == ord("-"), -value, value)
    ok = fast.copy()
    for i in np.flatnonzero(~fast).tolist():
        if not values[i]:
            continue
        try:
            parsed = parse_scaled(values[i], scale)
        except ValueError:
            continue
        if abs(parsed) <= MAX_SCALED:
            value[i] = parsed
            ok[i] = True
    value[~ok] = 0
    return value, ok


def _days_from_civil(year: Int64Array, month: Int64Array, day: Int64Array) -> Int64Array:
    # Howard Hinnant's days_from_civil, for the proleptic Gregorian calendar.
    y = year - (month <= 2)
    era = y // 400
    year_of_era = y - era * 400
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    days: Int64Array = era * 146_097 + day_of_era - 719_468
    return days


def _shape(codes: UInt8Array) -> UInt8Array:
    """Codes with every digit replaced by "0", to compare against a template such as b"0000-00-00"."""
    return np.where((codes >= ord("0")) & (codes <= ord("9")), np.uint8(ord("0")), codes)


def _template(text: str) -> UInt8Array:
    return np.frombuffer(text.encode("ascii"), dtype=np.uint8)


_DATE_SHAPE: Final = _template("0000-00-00")
_TIME_SHAPE: Final = _template("T00:00:00")
_OFFSET_SHAPE: Final = _template("00:00")
_FRACTION_WEIGHTS: Final = np.array([100_000, 10_000, 1_000, 100, 10, 1], dtype=np.int64)


def _parse_dates(values: list[str], lengths: Int64Array | None = None) -> tuple[Int64Array, BoolArray]:
    """Microseconds since the epoch (UTC) for stripped ISO 8601 strings; naive values are UTC.

    The common shapes (a date; a date-time with ``T`` or a space, seconds, an optional fraction of 1-6
    digits and an optional ``Z`` or ``+HH:MM``) are decoded in bulk; anything else goes through
    ``datetime.fromisoformat``.
    """
    n = len(values)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    codes, lengths, exact = _char_matrix(values, _lengths(values) if lengths is None else lengths, _DATE_WIDTH)

    def number(*positions: int) -> Int64Array:
        value = codes[:, positions[0]].astype(np.int64) - ord("0")
        for position in positions[1:]:
            value = value * 10 + codes[:, position] - ord("0")
        return value

    shape = _shape(codes[:, :19])
    shape[:, 10] = np.where(shape[:, 10] == ord(" "), np.uint8(ord("T")), shape[:, 10])
    year, month, day = number(0, 1, 2, 3), number(5, 6), number(8, 9)
    hour, minute, second = number(11, 12), number(14, 15), number(17, 18)
    month_ok = (month >= 1) & (month <= 12)
    month = np.where(month_ok, month, 1)
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    date_ok = (
        exact
        & (shape[:, :10] == _DATE_SHAPE).all(axis=1)
        & (year >= 1)
        & month_ok
        & (day >= 1)
        & (day <= _DAYS_IN_MONTH[month] + ((month == 2) & leap))
    )
    date_only = lengths == 10
    time_ok = (shape[:, 10:19] == _TIME_SHAPE).all(axis=1) & (hour <= 23) & (minute <= 59) & (second <= 59)
    end = codes[:, 19]
    offset_ok = (
        ((end == ord("+")) | (end == ord("-")))
        & (_shape(codes[:, 20:25]) == _OFFSET_SHAPE).all(axis=1)
        & (number(20, 21) <= 23)
        & (number(23, 24) <= 59)
    )
    ending_ok = (lengths == 19) | ((lengths == 20) & (end == ord("Z"))) | ((lengths == 25) & offset_ok)
    offset_minutes = np.where((lengths == 25) & offset_ok, number(20, 21) * 60 + number(23, 24), 0)
    offset_minutes = np.where(end == ord("-"), -offset_minutes, offset_minutes)
    fast = date_ok & (date_only | (time_ok & ending_ok))
    seconds = np.where(date_only, 0, (hour * 60 + minute) * 60 + second)
    micros = (_days_from_civil(year, month, day) * 86_400 + seconds) * 1_000_000 - offset_minutes * 60_000_000

    fractional = np.flatnonzero(date_ok & ~date_only & time_ok & (end == ord(".")))
    if fractional.size:
        fraction, fraction_ok = _fraction_and_zone(codes[fractional], lengths[fractional])
        micros[fractional] += fraction
        fast[fractional] = fraction_ok

    fast &= (micros >= _MIN_MICROS) & (micros <= _MAX_MICROS)
    ok = fast.copy()
    for i in np.flatnonzero(~fast).tolist():
        parsed = _parse_date_slow(values[i]) if values[i] else None
        if parsed is not None:
            micros[i] = parsed
            ok[i] = True
    micros[~ok] = 0
    return micros, ok


def _fraction_and_zone(codes: UInt8Array, lengths: Int64Array) -> tuple[Int64Array, BoolArray]:
    """For "...SS.ffffff[Z|+HH:MM]" rows: microseconds to add (fraction less zone offset) and validity."""
    digit_run = np.cumprod(_shape(codes[:, 20:27]) == ord("0"), axis=1).sum(axis=1)
    digits = codes[:, 20:26].astype(np.int64) - ord("0")
    fraction = np.where(np.arange(6) < digit_run[:, None], digits, 0) @ _FRACTION_WEIGHTS
    zone_at = np.minimum(20 + digit_run, _DATE_WIDTH - 6)
    zone = np.take_along_axis(codes, zone_at[:, None] + np.arange(6), axis=1)
    sign = zone[:, 0]
    zone_digits = zone.astype(np.int64) - ord("0")
    hours = zone_digits[:, 1] * 10 + zone_digits[:, 2]
    minutes = zone_digits[:, 4] * 10 + zone_digits[:, 5]
    offset = (
        (lengths == zone_at + 6)
        & ((sign == ord("+")) | (sign == ord("-")))
        & (_shape(zone[:, 1:]) == _OFFSET_SHAPE).all(axis=1)
        & (hours <= 23)
        & (minutes <= 59)
    )
    ok = (
        (digit_run >= 1)
        & (digit_run <= 6)
        & ((lengths == zone_at) | ((lengths == zone_at + 1) & (sign == ord("Z"))) | offset)
    )
    offset_minutes = np.where(offset, np.where(sign == ord("-"), -1, 1) * (hours * 60 + minutes), 0)
    adjust: Int64Array = fraction - offset_minutes * 60_000_000
    return adjust, ok


def _parse_date_slow(text: str) -> int | None:
    try:
        value = datetime.fromisoformat(text)
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):
        return None
    micros = (value - _NAIVE_EPOCH) // _MICROSECOND
    return micros if _MIN_MICROS <= micros <= _MAX_MICROS else None


# ---------------------------------------------------------------------------------------------
# Column-wise validation shared by CSV and JSON

Problem = tuple[int, str, str, str]  # (index in chunk, field, reason, message)
BlankCheck = Callable[[int], bool]


class _ErrorLog:
    """Keeps the first ``MAX_ERRORS`` errors in (row, column) order and counts the rest."""

    def __init__(self, file: str, columns: Sequence[str]) -> None:
        self.file = file
        self.rank = {name: rank for rank, name in enumerate(columns)}
        self.rank[""] = -1
        self.items: list[tuple[int, int, RowError]] = []
        self.total = 0

    def add(self, row: int, field: str, reason: str, message: str) -> None:
        self.total += 1
        error = RowError(row=row, field=field, reason=reason, message=message, file=self.file)
        self.items.append((row, self.rank[field], error))
        if len(self.items) > 4 * MAX_ERRORS:
            self._prune()

    def _prune(self) -> None:
        self.items.sort(key=lambda item: item[:2])
        del self.items[MAX_ERRORS:]

    def result(self) -> list[RowError]:
        self._prune()
        errors = [error for _, _, error in self.items]
        omitted = self.total - len(errors)
        if omitted:
            last = errors[-1]
            errors[-1] = RowError(
                row=last.row,
                field=last.field,
                reason=last.reason,
                message=(
                    f"{last.message} (error limit of {MAX_ERRORS} reached: {omitted} further "
                    f"error{'s' if omitted != 1 else ''} in this file not listed)"
                ),
                file=last.file,
            )
        return errors


def _empty(values: list[str]) -> BoolArray:
    blanks = values.count("")
    if blanks in {0, len(values)}:
        return np.full(len(values), blanks > 0, dtype=bool)
    return np.fromiter(map(not_, values), dtype=bool, count=len(values))


def _shown(text: str) -> str:
    return "a value of the wrong type" if text == _INVALID else repr(text)


def _check_text(
    values: list[str], empty: BoolArray, live: BoolArray, field: str, out: list[Problem], *, typed: bool
) -> BoolArray:
    """Required text; ``typed`` sources (JSON) may also hold values of the wrong type."""
    bad = live & empty
    out.extend((i, field, MISSING_VALUE, f"{field} is required") for i in np.flatnonzero(bad).tolist())
    if typed and _INVALID in values:
        for i, value in enumerate(values):
            if value == _INVALID and live[i]:
                bad[i] = True
                out.append((i, field, MISSING_VALUE, f"{field} must be a string"))
    if "\x00" in "".join(values):  # PostgreSQL text cannot hold NUL; one scan of the column finds it
        for i, value in enumerate(values):
            if "\x00" in value and live[i] and not bad[i]:
                bad[i] = True
                out.append((i, field, BAD_CSV, f"{field} contains a NUL character"))
    return np.logical_not(bad)


def _check_decimal(
    values: list[str],
    lengths: Int64Array,
    live: BoolArray,
    *,
    field: str,
    scale: int,
    out: list[Problem],
    default_zero: bool = False,
) -> tuple[Int64Array, BoolArray]:
    empty = lengths == 0
    value, ok = _parse_decimals(values, scale, lengths)
    if default_zero:
        ok |= empty
    else:
        out.extend((i, field, MISSING_VALUE, f"{field} is required") for i in np.flatnonzero(live & empty).tolist())
    out.extend(
        (
            i,
            field,
            BAD_NUMBER,
            f"{field} must be a plain decimal number with at most {scale} decimal places "
            f"(no exponent or thousands separator), got {_shown(values[i])}",
        )
        for i in np.flatnonzero(live & ~ok & ~empty).tolist()
    )
    return value, ok


def _check_date(
    values: list[str], lengths: Int64Array, live: BoolArray, field: str, out: list[Problem]
) -> tuple[Int64Array, BoolArray]:
    empty = lengths == 0
    micros, ok = _parse_dates(values, lengths)
    out.extend((i, field, MISSING_VALUE, f"{field} is required") for i in np.flatnonzero(live & empty).tolist())
    out.extend(
        (i, field, BAD_DATE, f"{field} must be an ISO 8601 date or date-time, got {_shown(values[i])}")
        for i in np.flatnonzero(live & ~ok & ~empty).tolist()
    )
    return micros, ok


def _take(values: list[str], keep: BoolArray, all_kept: bool) -> list[str]:
    return values if all_kept else list(compress(values, keep.tolist()))


def _join(parts: list[Int64Array]) -> Int64Array:
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


class _Builder:
    """Accumulates validated chunks of one file; subclasses know the file's columns."""

    file: str
    id_column: str
    columns: tuple[str, ...]  # every column read, in error-report order
    required: tuple[str, ...]
    measured: tuple[str, ...]  # columns parsed as numbers or dates

    def __init__(self) -> None:
        self.log = _ErrorLog(self.file, self.columns)
        self.tenant_ids: set[str] = set()
        self.row_count = 0
        self.from_json = False
        self._id_values: list[str] = []  # every usable id, for the duplicate check at the end
        self._id_rows: list[Int64Array] = []
        self._kept_rows: list[Int64Array] = []

    def add_chunk(
        self,
        rows: Int64Array,
        columns: dict[str, list[str]],
        blank_check: BlankCheck | None,
        non_empty: frozenset[str] = frozenset(),
    ) -> None:
        """Validate one chunk; ``non_empty`` names columns the caller knows have no empty value."""
        # Columns parsed as numbers or dates need their lengths anyway; the rest need only emptiness.
        self._lengths = {name: _lengths(columns[name]) for name in self.measured}
        empties = {
            name: (
                self._lengths[name] == 0
                if name in self._lengths
                else np.zeros(len(values), dtype=bool)
                if name in non_empty
                else _empty(values)
            )
            for name, values in columns.items()
        }
        live = np.ones(len(rows), dtype=bool)
        if blank_check is not None:
            candidates = np.logical_and.reduce(list(empties.values()))
            for i in np.flatnonzero(candidates).tolist():
                live[i] = not blank_check(i)
        self.row_count += int(live.sum())
        tenants = set(compress(columns[TENANT_COLUMN], live.tolist()))
        tenants.discard("")
        self.tenant_ids |= tenants

        problems: list[Problem] = []
        ids = columns[self.id_column]
        id_ok = _check_text(ids, empties[self.id_column], live, self.id_column, problems, typed=self.from_json)
        keep = self._validate(columns, empties, live, problems) & id_ok & live
        usable = live & id_ok
        self._id_values.extend(_take(ids, usable, bool(usable.all())))
        self._id_rows.append(rows[usable])
        problems.sort(key=lambda p: p[0])
        for index, field, reason, message in problems:
            self.log.add(int(rows[index]), field, reason, message)
        self._kept_rows.append(rows[keep])
        self._keep(columns, keep, bool(keep.all()))

    def _validate(
        self, columns: dict[str, list[str]], empties: dict[str, BoolArray], live: BoolArray, out: list[Problem]
    ) -> BoolArray:
        raise NotImplementedError

    def _keep(self, columns: dict[str, list[str]], keep: BoolArray, all_kept: bool) -> None:
        raise NotImplementedError

    def _duplicate_mask(self) -> BoolArray:
        """Report ids used on an earlier row (the later row is reported); mask of kept rows to drop."""
        kept_rows = _join(self._kept_rows)
        if len(set(self._id_values)) == len(self._id_values):
            return np.zeros(kept_rows.size, dtype=bool)
        first_row: dict[str, int] = {}
        repeated: list[int] = []
        for value, row in zip(self._id_values, _join(self._id_rows).tolist(), strict=True):
            first = first_row.setdefault(value, row)
            if first != row:
                repeated.append(row)
                self.log.add(
                    row, self.id_column, DUPLICATE_ID, f"{self.id_column} {value!r} already appears on row {first}"
                )
        return np.isin(kept_rows, np.array(repeated, dtype=np.int64))


class _SalesBuilder(_Builder):
    file = "sales"
    id_column = "sale_id"
    columns = (*SALES_COLUMNS, TENANT_COLUMN)
    required = SALES_COLUMNS
    measured = ("sale_date", "quantity_sold")

    def __init__(self) -> None:
        super().__init__()
        self._ids: list[str] = []
        self._skus: list[str] = []
        self._dates: list[Int64Array] = []
        self._quantities: list[Int64Array] = []

    def _validate(
        self, columns: dict[str, list[str]], empties: dict[str, BoolArray], live: BoolArray, out: list[Problem]
    ) -> BoolArray:
        sku_ok = _check_text(columns["sku"], empties["sku"], live, "sku", out, typed=self.from_json)
        self._micros, date_ok = _check_date(columns["sale_date"], self._lengths["sale_date"], live, "sale_date", out)
        quantities = columns["quantity_sold"]
        self._quantity, qty_ok = _check_decimal(
            quantities, self._lengths["quantity_sold"], live, field="quantity_sold", scale=QTY_SCALE, out=out
        )
        non_positive = live & qty_ok & (self._quantity <= 0)
        out.extend(
            (i, "quantity_sold", NON_POSITIVE_QUANTITY, f"quantity_sold must be greater than 0, got {quantities[i]}")
            for i in np.flatnonzero(non_positive).tolist()
        )
        return sku_ok & date_ok & qty_ok & ~non_positive

    def _keep(self, columns: dict[str, list[str]], keep: BoolArray, all_kept: bool) -> None:
        self._ids.extend(_take(columns["sale_id"], keep, all_kept))
        self._skus.extend(_take(columns["sku"], keep, all_kept))
        self._dates.append(self._micros[keep])
        self._quantities.append(self._quantity[keep])

    def finish(self) -> ParsedSales:
        drop = self._duplicate_mask()
        rows, micros, quantity = _join(self._kept_rows), _join(self._dates), _join(self._quantities)
        ids, skus = self._ids, self._skus
        if drop.any():
            keep = ~drop
            rows, micros, quantity = rows[keep], micros[keep], quantity[keep]
            ids, skus = _take(ids, keep, False), _take(skus, keep, False)
        batch = SalesBatch(row=rows, sale_id=ids, sku=skus, sale_date=micros.view("datetime64[us]"), quantity=quantity)
        return ParsedSales(batch=batch, errors=self.log.result(), tenant_ids=self.tenant_ids, row_count=self.row_count)


class _LotsBuilder(_Builder):
    file = "lots"
    id_column = "lot_id"
    columns = (*LOTS_COLUMNS, TENANT_COLUMN)
    required = tuple(c for c in LOTS_COLUMNS if c not in OPTIONAL_LOTS_COLUMNS)
    measured = LOTS_COLUMNS[2:]

    def __init__(self) -> None:
        super().__init__()
        self._ids: list[str] = []
        self._skus: list[str] = []
        self._parts: dict[str, list[Int64Array]] = {
            name: [] for name in ("received_date", "original", "remaining", "price", "freight")
        }

    def _validate(
        self, columns: dict[str, list[str]], empties: dict[str, BoolArray], live: BoolArray, out: list[Problem]
    ) -> BoolArray:
        def number(field: str, scale: int, *, default_zero: bool = False) -> tuple[Int64Array, BoolArray]:
            return _check_decimal(
                columns[field], self._lengths[field], live, field=field, scale=scale, out=out, default_zero=default_zero
            )

        sku_ok = _check_text(columns["sku"], empties["sku"], live, "sku", out, typed=self.from_json)
        micros, date_ok = _check_date(
            columns["received_date"], self._lengths["received_date"], live, "received_date", out
        )
        original, original_ok = number("original_quantity", QTY_SCALE)
        remaining, remaining_ok = number("remaining_quantity", QTY_SCALE)
        price, price_ok = number("unit_price", COST_SCALE)
        freight, freight_ok = number("freight_cost_per_unit", COST_SCALE, default_zero=True)
        ok = sku_ok & date_ok & original_ok & remaining_ok & price_ok & freight_ok

        def flag(mask: BoolArray, field: str, reason: str, message: Callable[[int], str]) -> None:
            nonlocal ok
            ok &= ~mask
            out.extend((i, field, reason, message(i)) for i in np.flatnonzero(mask).tolist())

        bad_original = live & original_ok & (original <= 0)
        flag(
            bad_original,
            "original_quantity",
            NON_POSITIVE_QUANTITY,
            lambda i: f"original_quantity must be greater than 0, got {columns['original_quantity'][i]}",
        )
        bad_remaining = live & remaining_ok & (remaining < 0)
        flag(
            bad_remaining,
            "remaining_quantity",
            NON_POSITIVE_QUANTITY,
            lambda i: f"remaining_quantity must not be negative, got {columns['remaining_quantity'][i]}",
        )
        flag(
            live & original_ok & remaining_ok & ~bad_original & ~bad_remaining & (remaining > original),
            "remaining_quantity",
            REMAINING_EXCEEDS_ORIGINAL,
            lambda i: (
                f"remaining_quantity {format_scaled(int(remaining[i]), QTY_SCALE)} exceeds original_quantity "
                f"{format_scaled(int(original[i]), QTY_SCALE)}"
            ),
        )

        def negative(field: str) -> Callable[[int], str]:
            return lambda i: f"{field} must not be negative, got {columns[field][i]}"

        flag(live & price_ok & (price < 0), "unit_price", NEGATIVE_COST, negative("unit_price"))
        flag(
            live & freight_ok & (freight < 0),
            "freight_cost_per_unit",
            NEGATIVE_COST,
            negative("freight_cost_per_unit"),
        )
        self._values = {
            "received_date": micros,
            "original": original,
            "remaining": remaining,
            "price": price,
            "freight": freight,
        }
        return ok

    def _keep(self, columns: dict[str, list[str]], keep: BoolArray, all_kept: bool) -> None:
        self._ids.extend(_take(columns["lot_id"], keep, all_kept))
        self._skus.extend(_take(columns["sku"], keep, all_kept))
        for name, parts in self._parts.items():
            parts.append(self._values[name][keep])

    def finish(self) -> ParsedLots:
        drop = self._duplicate_mask()
        rows = _join(self._kept_rows)
        values = {name: _join(parts) for name, parts in self._parts.items()}
        ids, skus = self._ids, self._skus
        if drop.any():
            keep = ~drop
            rows = rows[keep]
            values = {name: array[keep] for name, array in values.items()}
            ids, skus = _take(ids, keep, False), _take(skus, keep, False)
        batch = LotsBatch(
            row=rows,
            lot_id=ids,
            sku=skus,
            received_date=values["received_date"].view("datetime64[us]"),
            quantity=values["remaining"],
            unit_cost=values["price"] + values["freight"],
        )
        return ParsedLots(
            batch=batch,
            original_quantity=values["original"],
            unit_price=values["price"],
            freight=values["freight"],
            errors=self.log.result(),
            tenant_ids=self.tenant_ids,
            row_count=self.row_count,
        )


# ---------------------------------------------------------------------------------------------
# Sources

_BLOCK_CHARS: Final = 1 << 22
# ASCII characters str.strip() removes, besides the line breaks a plain block is split on.
_ASCII_SPACE: Final = (" ", "\t", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f")


def _needs_strip(text: str) -> bool:
    return not text.isascii() or any(space in text for space in _ASCII_SPACE)


class _Source:
    """The stream's decoded text, consumed either as runs of whole lines or line by line."""

    def __init__(self, text: io.TextIOWrapper) -> None:
        self._text = text
        self._buffer = ""
        self._pos = 0
        self._eof = False
        self._cr_only: bool | None = None

    def _fill(self) -> bool:
        if self._eof:
            return False
        chunk = self._text.read(_BLOCK_CHARS)
        if not chunk:
            self._eof = True
            return False
        if self._cr_only is None:
            # Classic Mac files end lines with a bare CR; treat them as LF so lines can be found.
            self._cr_only = "\r" in chunk and "\n" not in chunk
        if self._cr_only:
            chunk = chunk.replace("\r", "\n")
        self._buffer = self._buffer[self._pos :] + chunk
        self._pos = 0
        return True

    def lines(self) -> Iterator[str]:
        """Lines with their endings, for the csv module (which never reads past the record it parses)."""
        while True:
            end = self._buffer.find("\n", self._pos)
            if end < 0:
                if self._fill():
                    continue
                if self._pos < len(self._buffer):
                    line = self._buffer[self._pos :]
                    self._pos = len(self._buffer)
                    yield line
                return
            line = self._buffer[self._pos : end + 1]
            self._pos = end + 1
            yield line

    def peek_region(self) -> tuple[str, int] | None:
        """The next run of whole lines (about a block) without its last line break, and where it ends."""
        while not self._eof and len(self._buffer) - self._pos < _BLOCK_CHARS:
            self._fill()
        end = self._buffer.rfind("\n", self._pos)
        while end < 0 and self._fill():
            end = self._buffer.rfind("\n", self._pos)
        if end < 0:
            end = len(self._buffer)
        if self._pos >= len(self._buffer):
            return None
        return self._buffer[self._pos : end], end + 1

    def consume(self, end: int) -> None:
        self._pos = min(end, len(self._buffer))


@dataclass(frozen=True, slots=True)
class _Layout:
    wanted: list[tuple[str, int | None]]  # (column, position in the file or None when absent)
    width: int  # fields a record needs to reach every present column


def _read_csv(stream: BinaryIO, builder: _Builder) -> None:
    # utf-8-sig drops a byte-order mark; newline="" keeps CR LF and quoted line breaks for us to handle;
    # surrogateescape lets undecodable bytes through so they can be located by row (_undecodable_at).
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        _read_csv_text(_Source(text), builder)
    finally:
        text.detach()  # the caller owns the binary stream


def _bad_csv(builder: _Builder, row: int, exc: Exception) -> None:
    message = f"malformed CSV at data row {row}: {exc}" if row else f"malformed CSV header: {exc}"
    builder.log.add(row, "", BAD_CSV, message)


def _not_utf8(builder: _Builder, row: int) -> None:
    where = f"data row {row}" if row else "the header"
    builder.log.add(row, "", BAD_CSV, f"the file is not valid UTF-8 (in {where})")


def _undecodable_at(text: str) -> int:
    """Position of the first undecodable byte (a lone surrogate after surrogateescape), or -1."""
    if text.isascii():
        return -1
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return -1


def _read_csv_text(source: _Source, builder: _Builder) -> None:
    header: list[str] | None = None
    try:
        for record in csv.reader(source.lines(), strict=True):
            if any(field.strip() for field in record):
                header = record
                break
    except csv.Error as exc:
        _bad_csv(builder, 0, exc)
        return
    if header is None:
        builder.log.add(0, "", BAD_CSV, "the file is empty: expected a header row naming the columns")
        return
    if _undecodable_at("".join(header)) >= 0:
        _not_utf8(builder, 0)
        return

    position: dict[str, int] = {}
    for index, name in enumerate(header):
        position.setdefault(name.strip().lower(), index)
    missing = [column for column in builder.required if column not in position]
    for column in missing:
        builder.log.add(0, column, MISSING_COLUMN, f"the header has no {column!r} column")
    if missing:
        return
    wanted = [(column, position.get(column)) for column in builder.columns]
    layout = _Layout(wanted=wanted, width=max(index for _, index in wanted if index is not None) + 1)

    rows_read = 0
    while True:
        region = source.peek_region()
        if region is None:
            return
        text, end = region
        bad_at = _undecodable_at(text)
        if bad_at >= 0:
            # Validate the whole lines before the bad byte when they are plain, then stop.
            good = text[: max(text.rfind("\n", 0, bad_at), 0)]
            if good and _is_plain(good):
                _read_plain(good, len(header), builder, layout, rows_read)
            _not_utf8(builder, rows_read + text.count("\n", 0, bad_at) + 1)
            return
        if _is_plain(text):
            source.consume(end)
            count, failure = _read_plain(text, len(header), builder, layout, rows_read), None
        else:
            count, failure = _read_quoted(source, builder, layout, rows_read)
        rows_read += count
        if failure is not None:
            _bad_csv(builder, rows_read + 1, failure)
            return


def _is_plain(text: str) -> bool:
    """No quotes and no bare CR: every line is one record and every comma separates fields."""
    return '"' not in text and ("\r" not in text or text.count("\r") == text.count("\r\n"))


def _commas_per_line(text: str) -> Int64Array:
    """How many commas each line of ``text`` holds."""
    if text.isascii():
        data = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        line_ends = np.append(np.flatnonzero(data == ord("\n")), data.size)
        commas = np.flatnonzero(data == ord(","))
        counts: Int64Array = np.diff(np.searchsorted(commas, line_ends), prepend=0).astype(np.int64)
        return counts
    lines = text.split("\n")
    return np.fromiter(map(str.count, lines, repeat(",")), dtype=np.int64, count=len(lines))


def _read_plain(text: str, header_width: int, builder: _Builder, layout: _Layout, rows_read: int) -> int:
    """Whole lines without quotes: every line is one record and every comma a separator."""
    text = text.replace("\r\n", "\n")
    commas = _commas_per_line(text)
    n = commas.size
    rows = np.arange(rows_read + 1, rows_read + n + 1, dtype=np.int64)
    if (commas == header_width - 1).all():
        # The regular case: one split of the whole block, then every column is a strided slice.
        fields = text.replace("\n", ",").split(",")
        strip = _needs_strip(text)
        columns = {
            column: _column(fields[index::header_width], strip) if index is not None else [""] * n
            for column, index in layout.wanted
        }
        # Without padding to strip, a field is empty only where two separators meet or a line starts or
        # ends with a comma.
        no_empty_fields = not strip and not (
            ",," in text or ",\n" in text or "\n," in text or text.startswith(",") or text.endswith(",")
        )
        present = frozenset(column for column, index in layout.wanted if index is not None)
        builder.add_chunk(rows, columns, _blank_line_checker(text), present if no_empty_fields else frozenset())
    else:
        _add_records(builder, [line.split(",") for line in text.split("\n")], layout, rows)
    return n


def _blank_line_checker(text: str) -> BlankCheck:
    lines: list[str] = []

    def is_blank(i: int) -> bool:
        if not lines:  # split only when a row might be blank, which is rare
            lines.extend(text.split("\n"))
        return not lines[i].replace(",", "").strip()

    return is_blank


def _read_quoted(source: _Source, builder: _Builder, layout: _Layout, rows_read: int) -> tuple[int, Exception | None]:
    """Up to a chunk of records through the csv module, for text with quotes or bare CRs."""
    chunk: list[list[str]] = []
    failure: Exception | None = None
    try:
        chunk.extend(islice(csv.reader(source.lines(), strict=True), CHUNK_ROWS))
    except csv.Error as exc:
        failure = exc
    if chunk:
        rows = np.arange(rows_read + 1, rows_read + len(chunk) + 1, dtype=np.int64)
        _add_records(builder, chunk, layout, rows)
    elif failure is None:
        failure = csv.Error("no record could be read")
    return len(chunk), failure


def _column(values: list[str], strip: bool) -> list[str]:
    return list(map(str.strip, values)) if strip else values


def _add_records(builder: _Builder, records: list[list[str]], layout: _Layout, rows: Int64Array) -> None:
    width = layout.width
    if min(map(len, records)) < width:
        records = [r if len(r) >= width else r + [""] * (width - len(r)) for r in records]
    columns = {
        column: _column(list(map(itemgetter(index), records)), True) if index is not None else [""] * len(records)
        for column, index in layout.wanted
    }
    builder.add_chunk(rows, columns, lambda i: not any(field.strip() for field in records[i]))


_TEXT_FIELDS: Final = frozenset({"sale_id", "lot_id", "sku", TENANT_COLUMN})
_DATE_FIELDS: Final = frozenset({"sale_date", "received_date"})


def _json_text(value: object, column: str) -> str:
    """The text a JSON value stands for; wrong types become ``_INVALID``, null/absent become ""."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return _INVALID
    if column in _DATE_FIELDS:
        return value.isoformat() if isinstance(value, datetime) else _INVALID
    if isinstance(value, int):
        return str(value)
    if column in _TEXT_FIELDS:
        return _INVALID
    if isinstance(value, float):
        # repr gives the shortest text that round-trips, so 10.1 stays "10.1", never 10.0999...
        return repr(value) if math.isfinite(value) else _INVALID
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else _INVALID
    return _INVALID


def _read_records(records: Sequence[object], builder: _Builder) -> None:
    builder.from_json = True
    for start in range(0, len(records), CHUNK_ROWS):
        part = [record if isinstance(record, dict) else {} for record in records[start : start + CHUNK_ROWS]]
        columns = {column: [_json_text(record.get(column), column) for record in part] for column in builder.columns}
        rows = np.arange(start + 1, start + len(part) + 1, dtype=np.int64)
        builder.add_chunk(rows, columns, None)
