"""Vectorised parsing of string columns: decimals into scaled integers, ISO 8601 dates into microseconds.

Values in their common shapes are decoded in bulk from a zero-padded matrix of character codes; only
unusual values (too long, non-ASCII, too precise, other date forms) fall back to per-value Python
parsing, which decides exactly. Both parsers take stripped strings and say which values were valid.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np
import numpy.typing as npt

from shared.decimals import MAX_SCALED, parse_scaled
from shared.runs.fifo import Int64Array

BoolArray = npt.NDArray[np.bool_]
UInt8Array = npt.NDArray[np.uint8]

_NAIVE_EPOCH: Final = datetime(1970, 1, 1)
_MICROSECOND: Final = timedelta(microseconds=1)
_POW10_INT64: Final = np.array([10**e for e in range(18)], dtype=np.int64)
_MAX_NUMBER_CHARS: Final = 32
_DATE_WIDTH: Final = 32  # "YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM"
_MIN_MICROS: Final = (datetime(1, 1, 2) - _NAIVE_EPOCH) // _MICROSECOND
_MAX_MICROS: Final = (datetime(9999, 12, 30) - _NAIVE_EPOCH) // _MICROSECOND
_DAYS_IN_MONTH: Final = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
# Shapes to compare against once every digit is replaced by "0" (see _shape).
_DATE_SHAPE: Final = np.frombuffer(b"0000-00-00", dtype=np.uint8)
_TIME_SHAPE: Final = np.frombuffer(b"T00:00:00", dtype=np.uint8)
_OFFSET_SHAPE: Final = np.frombuffer(b"00:00", dtype=np.uint8)
_FRACTION_WEIGHTS: Final = np.array([100_000, 10_000, 1_000, 100, 10, 1], dtype=np.int64)


def lengths_of(values: list[str]) -> Int64Array:
    return np.fromiter(map(len, values), dtype=np.int64, count=len(values))


def parse_decimals(values: list[str], scale: int, lengths: Int64Array | None = None) -> tuple[Int64Array, BoolArray]:
    """Scaled integers for stripped decimal strings; ``ok`` is False for empty or invalid values."""
    n = len(values)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    if lengths is None:
        lengths = lengths_of(values)
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


def parse_dates(values: list[str], lengths: Int64Array | None = None) -> tuple[Int64Array, BoolArray]:
    """Microseconds since the epoch (UTC) for stripped ISO 8601 strings; naive values are UTC.

    The common shapes (a date; a date-time with ``T`` or a space, seconds, an optional fraction of 1-6
    digits and an optional ``Z`` or ``+HH:MM``) are decoded in bulk; anything else goes through
    ``datetime.fromisoformat``.
    """
    n = len(values)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    codes, lengths, exact = _char_matrix(values, lengths_of(values) if lengths is None else lengths, _DATE_WIDTH)

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


def _shape(codes: UInt8Array) -> UInt8Array:
    """Codes with every digit replaced by "0", to compare against a template such as b"0000-00-00"."""
    return np.where((codes >= ord("0")) & (codes <= ord("9")), np.uint8(ord("0")), codes)


def _days_from_civil(year: Int64Array, month: Int64Array, day: Int64Array) -> Int64Array:
    # Howard Hinnant's days_from_civil, for the proleptic Gregorian calendar.
    y = year - (month <= 2)
    era = y // 400
    year_of_era = y - era * 400
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    days: Int64Array = era * 146_097 + day_of_era - 719_468
    return days
