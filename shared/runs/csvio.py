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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import compress, islice
from operator import itemgetter
from typing import BinaryIO, Final, Literal

import numpy as np
import numpy.typing as npt

from shared.runs.decimals import COST_SCALE, MAX_SCALED, QTY_SCALE, format_scaled, parse_scaled
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

_POW10_INT64: Final = np.array([10**e for e in range(18)], dtype=np.int64)
_MAX_NUMBER_CHARS: Final = 32
_DATE_WIDTH: Final = 32  # "YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM"
_MIN_MICROS: Final = (datetime(1, 1, 2) - _NAIVE_EPOCH) // _MICROSECOND
_MAX_MICROS: Final = (datetime(9999, 12, 30) - _NAIVE_EPOCH) // _MICROSECOND


def _lengths(values: list[str]) -> Int64Array:
    return np.fromiter(map(len, values), dtype=np.int64, count=len(values))


def _char_matrix(values: list[str], lengths: Int64Array, max_chars: int) -> Int64Array:
    """Code points as an (n, width) matrix, zero-padded; values longer than ``max_chars`` are blanked."""
    if lengths.size and int(lengths.max()) > max_chars:
        values = [v if len(v) <= max_chars else "" for v in values]
    text = np.array(values, dtype=str)
    width = text.dtype.itemsize // 4
    codes = text.view(np.uint32).reshape(len(values), width).astype(np.int64)
    if width < max_chars:
        padded = np.zeros((len(values), max_chars), dtype=np.int64)
        padded[:, :width] = codes
        return padded
    return codes


def _parse_decimals(values: list[str], scale: int) -> tuple[Int64Array, BoolArray]:
    """Scaled integers for stripped decimal strings; ``ok`` is False for empty or invalid values."""
    n = len(values)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    lengths = _lengths(values)
    codes = _char_matrix(values, lengths, _MAX_NUMBER_CHARS)
    columns = np.arange(codes.shape[1])
    inside = columns < lengths[:, None]
    clean = ((codes != 0) == inside).all(axis=1) & (lengths <= _MAX_NUMBER_CHARS)
    first = codes[:, 0]
    signed = (first == ord("+")) | (first == ord("-"))
    is_digit = (codes >= ord("0")) & (codes <= ord("9")) & inside
    is_dot = (codes == ord(".")) & inside
    allowed = is_digit | is_dot | ~inside
    allowed[:, 0] |= signed
    dots = is_dot.sum(axis=1)
    fast = clean & allowed.all(axis=1) & (dots <= 1) & is_digit.any(axis=1)
    dot_at = np.where(dots == 1, is_dot.argmax(axis=1), lengths)[:, None]
    # The power of ten each digit stands for once scaled: left of the point counts up from the point.
    power = np.where(columns < dot_at, dot_at - 1 - columns, dot_at - columns) + scale
    digit = np.where(is_digit, codes - ord("0"), 0)
    # Non-zero digits below the scale (too precise) or at 10**18 and above (out of range) are left to
    # the exact slow path, which rejects them with a precise message.
    fast &= ~((digit != 0) & ((power < 0) | (power > 17))).any(axis=1)
    value = (digit * _POW10_INT64[np.clip(power, 0, 17)]).sum(axis=1)
    value = np.where(first == ord("-"), -value, value)
    ok = fast.copy()
    for i in np.flatnonzero(~fast & (lengths > 0)).tolist():
        try:
            parsed = parse_scaled(values[i], scale)
        except ValueError:
            continue
        if abs(parsed) <= MAX_SCALED:
            value[i] = parsed
            ok[i] = True
    value[~ok] = 0
    return value, ok


def _digits(codes: Int64Array, start: int, stop: int) -> tuple[Int64Array, BoolArray]:
    block = codes[:, start:stop] - ord("0")
    valid: BoolArray = np.asarray(((block >= 0) & (block <= 9)).all(axis=1))
    value = np.zeros(codes.shape[0], np.int64)
    for column in range(stop - start):
        value = value * 10 + block[:, column]
    return value, valid


def _days_from_civil(year: Int64Array, month: Int64Array, day: Int64Array) -> Int64Array:
    # Howard Hinnant's days_from_civil, valid for the proleptic Gregorian calendar.
    y = year - (month <= 2)
    era = y // 400
    year_of_era = y - era * 400
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    days: Int64Array = era * 146_097 + day_of_era - 719_468
    return days


_DAYS_IN_MONTH: Final = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def _parse_dates(values: list[str]) -> tuple[Int64Array, BoolArray]:
    """Microseconds since the epoch (UTC) for stripped ISO 8601 strings; naive values are UTC.

    The common shapes (date; date-time with ``T`` or space, optional fraction of 1-6 digits, optional
    ``Z`` or ``+HH:MM``) are decoded in bulk; anything else goes through ``datetime.fromisoformat``.
    """
    n = len(values)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    lengths = _lengths(values)
    codes = _char_matrix(values, lengths, _DATE_WIDTH)
    rows = np.arange(n)
    year, year_ok = _digits(codes, 0, 4)
    month, month_ok = _digits(codes, 5, 7)
    day, day_ok = _digits(codes, 8, 10)
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    month_index = np.clip(month, 0, 12)
    date_ok = (
        year_ok
        & month_ok
        & day_ok
        & (codes[:, 4] == ord("-"))
        & (codes[:, 7] == ord("-"))
        & (year >= 1)
        & (month >= 1)
        & (month <= 12)
        & (day >= 1)
        & (day <= _DAYS_IN_MONTH[month_index] + ((month == 2) & leap))
    )
    hour, hour_ok = _digits(codes, 11, 13)
    minute, minute_ok = _digits(codes, 14, 16)
    second, second_ok = _digits(codes, 17, 19)
    time_ok = (
        (lengths >= 19)
        & ((codes[:, 10] == ord("T")) | (codes[:, 10] == ord(" ")))
        & hour_ok
        & minute_ok
        & second_ok
        & (codes[:, 13] == ord(":"))
        & (codes[:, 16] == ord(":"))
        & (hour <= 23)
        & (minute <= 59)
        & (second <= 59)
    )
    has_fraction = codes[:, 19] == ord(".")
    fraction_digits = (codes[:, 20:27] >= ord("0")) & (codes[:, 20:27] <= ord("9"))
    run = np.cumprod(fraction_digits, axis=1).sum(axis=1)
    fraction_ok = ~has_fraction | ((run >= 1) & (run <= 6))
    fraction = np.zeros(n, np.int64)
    for k in range(6):
        digit = np.where(has_fraction & (run > k), codes[:, 20 + k] - ord("0"), 0)
        fraction += digit * 10 ** (5 - k)
    zone_at = np.where(has_fraction, 20 + run, 19)
    zone_at = np.clip(zone_at, 0, _DATE_WIDTH - 6)
    zone_char = codes[rows, zone_at]
    zone_hours = (codes[rows, zone_at + 1] - ord("0")) * 10 + codes[rows, zone_at + 2] - ord("0")
    zone_minutes = (codes[rows, zone_at + 4] - ord("0")) * 10 + codes[rows, zone_at + 5] - ord("0")
    zone_digits = np.ones(n, dtype=bool)
    for offset in (1, 2, 4, 5):
        c = codes[rows, zone_at + offset]
        zone_digits &= (c >= ord("0")) & (c <= ord("9"))
    offset_zone = (
        (lengths == zone_at + 6)
        & ((zone_char == ord("+")) | (zone_char == ord("-")))
        & zone_digits
        & (codes[rows, zone_at + 3] == ord(":"))
        & (zone_hours <= 23)
        & (zone_minutes <= 59)
    )
    zone_ok = (lengths == zone_at) | ((lengths == zone_at + 1) & (zone_char == ord("Z"))) | offset_zone
    offset_minutes = np.where(
        offset_zone, np.where(zone_char == ord("-"), -1, 1) * (zone_hours * 60 + zone_minutes), 0
    )
    date_only = lengths == 10
    fast = date_ok & (date_only | (time_ok & fraction_ok & zone_ok))
    seconds_of_day = np.where(date_only, 0, (hour * 60 + minute) * 60 + second)
    micros = (
        _days_from_civil(year, month_index, day) * 86_400_000_000
        + seconds_of_day * 1_000_000
        + np.where(date_only, 0, fraction)
        - offset_minutes * 60_000_000
    )
    fast &= (micros >= _MIN_MICROS) & (micros <= _MAX_MICROS)
    ok = fast.copy()
    for i in np.flatnonzero(~fast & (lengths > 0)).tolist():
        parsed = _parse_date_slow(values[i])
        if parsed is not None:
            micros[i] = parsed
            ok[i] = True
    micros[~ok] = 0
    return micros, ok


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


class _ErrorLog:
    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[RowError] = []
        self.total = 0

    def add(self, row: int, field: str, reason: str, message: str) -> None:
        self.total += 1
        if len(self.items) < MAX_ERRORS:
            self.items.append(RowError(row=row, field=field, reason=reason, message=message, file=self.file))

    def result(self) -> list[RowError]:
        items = list(self.items)
        if self.total > len(items):
            last = items[-1]
            omitted = self.total - len(items)
            items[-1] = RowError(
                row=last.row,
                field=last.field,
                reason=last.reason,
                message=(
                    f"{last.message} (error limit of {MAX_ERRORS} reached: {omitted} further "
                    f"error{'s' if omitted != 1 else ''} in this file not listed)"
                ),
                file=last.file,
            )
        return items


Problem = tuple[int, str, str, str]  # (index in chunk, field, reason, message)


def _empty(values: list[str]) -> BoolArray:
    return np.equal(_lengths(values), 0)


def _shown(text: str) -> str:
    return "a value of the wrong type" if text == _INVALID else repr(text)


def _check_text(
    values: list[str], empty: BoolArray, live: BoolArray, field: str, out: list[Problem]
) -> BoolArray:
    bad = live & empty
    out.extend((i, field, MISSING_VALUE, f"{field} is required") for i in np.flatnonzero(bad).tolist())
    if _INVALID in values:
        for i, value in enumerate(values):
            if value == _INVALID and live[i]:
                bad[i] = True
                out.append((i, field, MISSING_VALUE, f"{field} must be a string"))
    return np.logical_not(bad)


def _check_decimal(
    values: list[str],
    empty: BoolArray,
    live: BoolArray,
    *,
    field: str,
    scale: int,
    out: list[Problem],
    default_zero: bool = False,
) -> tuple[Int64Array, BoolArray]:
    value, ok = _parse_decimals(values, scale)
    if default_zero:
        ok |= empty
    else:
        out.extend(
            (i, field, MISSING_VALUE, f"{field} is required") for i in np.flatnonzero(live & empty).tolist()
        )
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
    values: list[str], empty: BoolArray, live: BoolArray, field: str, out: list[Problem]
) -> tuple[Int64Array, BoolArray]:
    micros, ok = _parse_dates(values)
    out.extend(
        (i, field, MISSING_VALUE, f"{field} is required") for i in np.flatnonzero(live & empty).tolist()
    )
    out.extend(
        (i, field, BAD_DATE, f"{field} must be an ISO 8601 date or date-time, got {_shown(values[i])}")
        for i in np.flatnonzero(live & ~ok & ~empty).tolist()
    )
    return micros, ok


def _report(where: list[Problem], rows: Int64Array, log: _ErrorLog, field_rank: dict[str, int]) -> None:
    where.sort(key=lambda p: (p[0], field_rank[p[1]]))
    for index, field, reason, message in where:
        log.add(int(rows[index]), field, reason, message)


def _take(values: list[str], keep: BoolArray, all_kept: bool) -> list[str]:
    return values if all_kept else list(compress(values, keep.tolist()))


BlankCheck = Callable[[int], bool]


class _Builder:
    """Accumulates validated chunks of one file; subclasses know the file's columns."""

    file: str
    columns: tuple[str, ...]  # every column read, in error-report order
    required: tuple[str, ...]

    def __init__(self) -> None:
        self.log = _ErrorLog(self.file)
        self.tenant_ids: set[str] = set()
        self.row_count = 0
        self.field_rank = {name: rank for rank, name in enumerate(self.columns)}
        self.field_rank[""] = -1
        self._seen_ids: dict[str, int] = {}

    def add_chunk(
        self, rows: Int64Array, columns: dict[str, list[str]], blank_check: BlankCheck | None
    ) -> None:
        raise NotImplementedError

    def _live_rows(self, empties: list[BoolArray], blank_check: BlankCheck | None) -> BoolArray:
        live = np.ones(empties[0].size, dtype=bool)
        if blank_check is not None:
            candidates = np.logical_and.reduce(empties)
            for i in np.flatnonzero(candidates).tolist():
                live[i] = not blank_check(i)
        self.row_count += int(live.sum())
        return live

    def _collect_tenants(self, values: list[str], live: BoolArray) -> None:
        seen = set(compress(values, live.tolist()))
        seen.discard("")
        self.tenant_ids |= seen

    def _check_duplicates(
        self, ids: list[str], usable: BoolArray, rows: Int64Array, field: str, out: list[Problem]
    ) -> BoolArray:
        """Flag ids already used on an earlier row of the file (the later row is reported)."""
        unique = np.ones(len(ids), dtype=bool)
        positions = np.flatnonzero(usable).tolist()
        candidates = [ids[i] for i in positions]
        fresh = set(candidates)
        if len(fresh) == len(candidates) and self._seen_ids.keys().isdisjoint(fresh):
            self._seen_ids.update(zip(candidates, rows[positions].tolist(), strict=True))
            return unique
        for i, value in zip(positions, candidates, strict=True):
            first = self._seen_ids.setdefault(value, int(rows[i]))
            if first != int(rows[i]):
                unique[i] = False
                out.append((i, field, DUPLICATE_ID, f"{field} {value!r} already appears on row {first}"))
        return unique


class _SalesBuilder(_Builder):
    file = "sales"
    columns = (*SALES_COLUMNS, TENANT_COLUMN)
    required = SALES_COLUMNS

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[Int64Array] = []
        self._ids: list[str] = []
        self._skus: list[str] = []
        self._dates: list[Int64Array] = []
        self._quantities: list[Int64Array] = []

    def add_chunk(
        self, rows: Int64Array, columns: dict[str, list[str]], blank_check: BlankCheck | None
    ) -> None:
        ids, skus = columns["sale_id"], columns["sku"]
        dates, quantities = columns["sale_date"], columns["quantity_sold"]
        tenants = columns[TENANT_COLUMN]
        empty_id, empty_sku, empty_date, empty_qty = (
            _empty(ids),
            _empty(skus),
            _empty(dates),
            _empty(quantities),
        )
        live = self._live_rows([empty_id, empty_sku, empty_date, empty_qty, _empty(tenants)], blank_check)
        self._collect_tenants(tenants, live)

        problems: list[Problem] = []
        id_ok = _check_text(ids, empty_id, live, "sale_id", problems)
        sku_ok = _check_text(skus, empty_sku, live, "sku", problems)
        micros, date_ok = _check_date(dates, empty_date, live, "sale_date", problems)
        quantity, qty_ok = _check_decimal(
            quantities, empty_qty, live, field="quantity_sold", scale=QTY_SCALE, out=problems
        )
        non_positive = live & qty_ok & (quantity <= 0)
        problems.extend(
            (
                i,
                "quantity_sold",
                NON_POSITIVE_QUANTITY,
                f"quantity_sold must be greater than 0, got {quantities[i]}",
            )
            for i in np.flatnonzero(non_positive).tolist()
        )
        unique = self._check_duplicates(ids, live & id_ok, rows, "sale_id", problems)
        _report(problems, rows, self.log, self.field_rank)

        keep = live & id_ok & sku_ok & date_ok & qty_ok & ~non_positive & unique
        all_kept = bool(keep.all())
        self._rows.append(rows[keep])
        self._ids.extend(_take(ids, keep, all_kept))
        self._skus.extend(_take(skus, keep, all_kept))
        self._dates.append(micros[keep])
        self._quantities.append(quantity[keep])

    def finish(self) -> ParsedSales:
        batch = SalesBatch(
            row=_join(self._rows),
            sale_id=self._ids,
            sku=self._skus,
            sale_date=_join(self._dates).view("datetime64[us]"),
            quantity=_join(self._quantities),
        )
        return ParsedSales(
            batch=batch, errors=self.log.result(), tenant_ids=self.tenant_ids, row_count=self.row_count
        )


class _LotsBuilder(_Builder):
    file = "lots"
    columns = (*LOTS_COLUMNS, TENANT_COLUMN)
    required = tuple(c for c in LOTS_COLUMNS if c not in OPTIONAL_LOTS_COLUMNS)

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[Int64Array] = []
        self._ids: list[str] = []
        self._skus: list[str] = []
        self._dates: list[Int64Array] = []
        self._original: list[Int64Array] = []
        self._remaining: list[Int64Array] = []
        self._price: list[Int64Array] = []
        self._freight: list[Int64Array] = []

    def add_chunk(
        self, rows: Int64Array, columns: dict[str, list[str]], blank_check: BlankCheck | None
    ) -> None:
        ids, skus, dates = columns["lot_id"], columns["sku"], columns["received_date"]
        originals, remainings = columns["original_quantity"], columns["remaining_quantity"]
        prices, freights, tenants = (
            columns["unit_price"],
            columns["freight_cost_per_unit"],
            columns[TENANT_COLUMN],
        )
        empties = {name: _empty(values) for name, values in columns.items()}
        live = self._live_rows(list(empties.values()), blank_check)
        self._collect_tenants(tenants, live)

        problems: list[Problem] = []
        id_ok = _check_text(ids, empties["lot_id"], live, "lot_id", problems)
        sku_ok = _check_text(skus, empties["sku"], live, "sku", problems)
        micros, date_ok = _check_date(dates, empties["received_date"], live, "received_date", problems)

        def number(field: str, scale: int, *, default_zero: bool = False) -> tuple[Int64Array, BoolArray]:
            return _check_decimal(
                columns[field],
                empties[field],
                live,
                field=field,
                scale=scale,
                out=problems,
                default_zero=default_zero,
            )

        original, original_ok = number("original_quantity", QTY_SCALE)
        remaining, remaining_ok = number("remaining_quantity", QTY_SCALE)
        price, price_ok = number("unit_price", COST_SCALE)
        freight, freight_ok = number("freight_cost_per_unit", COST_SCALE, default_zero=True)

        bad_original = live & original_ok & (original <= 0)
        problems.extend(
            (
                i,
                "original_quantity",
                NON_POSITIVE_QUANTITY,
                f"original_quantity must be greater than 0, got {originals[i]}",
            )
            for i in np.flatnonzero(bad_original).tolist()
        )
        bad_remaining = live & remaining_ok & (remaining < 0)
        problems.extend(
            (
                i,
                "remaining_quantity",
                NON_POSITIVE_QUANTITY,
                f"remaining_quantity must not be negative, got {remainings[i]}",
            )
            for i in np.flatnonzero(bad_remaining).tolist()
        )
        exceeds = live & original_ok & remaining_ok & ~bad_original & ~bad_remaining & (remaining > original)
        problems.extend(
            (
                i,
                "remaining_quantity",
                REMAINING_EXCEEDS_ORIGINAL,
                f"remaining_quantity {format_scaled(int(remaining[i]), QTY_SCALE)} exceeds original_quantity "
                f"{format_scaled(int(original[i]), QTY_SCALE)}",
            )
            for i in np.flatnonzero(exceeds).tolist()
        )
        negative = np.zeros(len(rows), dtype=bool)
        for field, values, amount, ok in (
            ("unit_price", prices, price, price_ok),
            ("freight_cost_per_unit", freights, freight, freight_ok),
        ):
            below = live & ok & (amount < 0)
            negative |= below
            problems.extend(
                (i, field, NEGATIVE_COST, f"{field} must not be negative, got {values[i]}")
                for i in np.flatnonzero(below).tolist()
            )
        unique = self._check_duplicates(ids, live & id_ok, rows, "lot_id", problems)
        _report(problems, rows, self.log, self.field_rank)

        keep = (
            live
            & id_ok
            & sku_ok
            & date_ok
            & original_ok
            & remaining_ok
            & price_ok
            & freight_ok
            & ~bad_original
            & ~bad_remaining
            & ~exceeds
            & ~negative
            & unique
        )
        all_kept = bool(keep.all())
        self._rows.append(rows[keep])
        self._ids.extend(_take(ids, keep, all_kept))
        self._skus.extend(_take(skus, keep, all_kept))
        self._dates.append(micros[keep])
        self._original.append(original[keep])
        self._remaining.append(remaining[keep])
        self._price.append(price[keep])
        self._freight.append(freight[keep])

    def finish(self) -> ParsedLots:
        price, freight = _join(self._price), _join(self._freight)
        batch = LotsBatch(
            row=_join(self._rows),
            lot_id=self._ids,
            sku=self._skus,
            received_date=_join(self._dates).view("datetime64[us]"),
            quantity=_join(self._remaining),
            unit_cost=price + freight,
        )
        return ParsedLots(
            batch=batch,
            original_quantity=_join(self._original),
            unit_price=price,
            freight=freight,
            errors=self.log.result(),
            tenant_ids=self.tenant_ids,
            row_count=self.row_count,
        )


def _join(parts: list[Int64Array]) -> Int64Array:
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


# ---------------------------------------------------------------------------------------------
# Sources


def _read_csv(stream: BinaryIO, builder: _Builder) -> None:
    # utf-8-sig drops a byte-order mark; newline="" lets the csv module see CRLF and quoted newlines.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        _read_csv_text(text, builder)
    finally:
        text.detach()  # the caller owns the binary stream


def _bad_csv(builder: _Builder, row: int, exc: Exception) -> None:
    if isinstance(exc, UnicodeDecodeError):
        where = "in the header" if row == 0 else f"at or after data row {row}"
        message = f"the file is not valid UTF-8 ({where})"
    else:
        message = f"malformed CSV at data row {row}: {exc}" if row else f"malformed CSV header: {exc}"
    builder.log.add(row, "", BAD_CSV, message)


def _blank_checker(records: list[list[str]]) -> BlankCheck:
    return lambda i: not any(field.strip() for field in records[i])


def _read_csv_text(text: io.TextIOWrapper, builder: _Builder) -> None:
    reader = csv.reader(text, strict=True)
    header: list[str] | None = None
    try:
        for record in reader:
            if any(field.strip() for field in record):
                header = record
                break
    except (csv.Error, UnicodeDecodeError) as exc:
        _bad_csv(builder, 0, exc)
        return
    if header is None:
        builder.log.add(0, "", BAD_CSV, "the file is empty: expected a header row naming the columns")
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
    width = max(index for _, index in wanted if index is not None) + 1
    rows_read = 0
    while True:
        chunk: list[list[str]] = []
        failure: Exception | None = None
        try:
            chunk.extend(islice(reader, CHUNK_ROWS))
        except (csv.Error, UnicodeDecodeError) as exc:
            failure = exc
        if chunk:
            if min(map(len, chunk)) < width:
                chunk = [r if len(r) >= width else r + [""] * (width - len(r)) for r in chunk]
            columns = {
                column: (
                    list(map(str.strip, map(itemgetter(index), chunk)))
                    if index is not None
                    else [""] * len(chunk)
                )
                for column, index in wanted
            }
            rows = np.arange(rows_read + 1, rows_read + len(chunk) + 1, dtype=np.int64)
            builder.add_chunk(rows, columns, _blank_checker(chunk))
            rows_read += len(chunk)
        if failure is not None:
            _bad_csv(builder, rows_read + 1, failure)
            return
        if len(chunk) < CHUNK_ROWS:
            return


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
    for start in range(0, len(records), CHUNK_ROWS):
        part = [record if isinstance(record, dict) else {} for record in records[start : start + CHUNK_ROWS]]
        columns = {
            column: [_json_text(record.get(column), column) for record in part] for column in builder.columns
        }
        rows = np.arange(start + 1, start + len(part) + 1, dtype=np.int64)
        builder.add_chunk(rows, columns, None)
