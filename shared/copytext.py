"""Column-wise encoding for PostgreSQL's COPY text format, fast enough for millions of rows.

Columns are encoded whole (NumPy where it helps) and rows are joined once; no per-row Python objects
beyond the final strings. The ledger's canonical form (`shared.ledger.canonical`) is built from it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from shared.decimals import format_scaled

NULL = "\\N"
# What PostgreSQL's COPY TO escapes, so text read back with COPY TO is already in this encoding.
_SPECIAL = re.compile(r"[\\\t\n\r\b\f\v]")
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\b": "\\b", "\f": "\\f", "\v": "\\v"})
# A column with at most 1 distinct value per this many rows is encoded once per distinct value.
_REPEATS = 4


def text_column(values: Sequence[str | None]) -> list[str]:
    """Escape a text column for COPY (backslash and the control characters COPY escapes; None → \\N)."""
    has_null = any(v is None for v in values)
    if has_null:
        strings = [NULL if v is None else v for v in values]
        if _SPECIAL.search("\x00".join(v for v in values if v is not None)):
            return [NULL if v is None else v.translate(_ESCAPES) for v in values]
        return strings
    plain: list[str] = list(values)  # type: ignore[arg-type]
    if _SPECIAL.search("\x00".join(plain)):
        return [v.translate(_ESCAPES) for v in plain]
    return plain


def escape(value: str | None) -> str:
    return NULL if value is None else value.translate(_ESCAPES)


def _by_distinct(values: npt.NDArray[Any], encode: Any) -> list[str] | None:
    """Encode each distinct value once when the column repeats a lot (quantities, costs, sale times)."""
    if len(values) < 1000:
        return None
    distinct, inverse = np.unique(values, return_inverse=True)
    if len(distinct) * _REPEATS > len(values):
        return None
    encoded: list[str] = np.array(encode(distinct), dtype=object)[inverse.reshape(-1)].tolist()
    return encoded


def scaled_column(values: npt.NDArray[Any], scale: int) -> list[str]:
    """Scaled integers as fixed-point text with exactly `scale` decimals (int64 or object arrays)."""
    if values.dtype != object and (cached := _by_distinct(values, lambda v: scaled_column(v, scale))) is not None:
        return cached
    if values.dtype == object:
        return [format_scaled(int(v), scale) for v in values.tolist()]
    base = 10**scale
    magnitude = np.abs(values)
    whole = (magnitude // base).tolist()
    frac = (magnitude % base).tolist()
    negative = (values < 0).tolist()
    return [f"{'-' if n else ''}{w}.{f:0{scale}d}" for n, w, f in zip(negative, whole, frac, strict=True)]


def timestamp_column(values: npt.NDArray[np.datetime64]) -> list[str]:
    """UTC microsecond timestamps as `YYYY-MM-DDTHH:MM:SS.ffffffZ`."""
    values = values.astype("datetime64[us]")
    if (cached := _by_distinct(values, timestamp_column)) is not None:
        return cached
    return [s + "Z" for s in np.datetime_as_string(values.astype("datetime64[us]"), unit="us").tolist()]


def int_column(values: Sequence[int | None] | npt.NDArray[Any]) -> list[str]:
    items = values.tolist() if isinstance(values, np.ndarray) else values
    return [NULL if v is None else str(v) for v in items]


def constant(value: str | None, n: int) -> list[str]:
    return [escape(value)] * n


def join_rows(columns: Sequence[Sequence[str]]) -> list[str]:
    return list(map("\t".join, zip(*columns, strict=True)))
