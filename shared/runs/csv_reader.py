"""Reading a CSV stream into chunks of stripped string columns, which it hands to a builder.

The header names the columns, in any order and any case, each column it reads once (a repeated name is
refused: which of the two is meant cannot be known). Blocks of whole lines with no quotes and
no bare CR (nearly every real file) are split with ``str`` methods in one go; anything else goes
through the ``csv`` module a chunk of records at a time. A problem with the file itself (not UTF-8,
malformed, no header, a required column missing) is reported as an error and ends the reading.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice, repeat
from operator import itemgetter
from typing import BinaryIO, Final

import numpy as np

from shared.runs.fifo import Int64Array
from shared.runs.validation import (
    BAD_CSV,
    CHUNK_ROWS,
    DUPLICATE_COLUMN,
    MISSING_COLUMN,
    BlankCheck,
    Builder,
    Chunk,
)

_BLOCK_CHARS: Final = 1 << 22
# ASCII characters str.strip() removes, besides the line breaks a plain block is split on.
_ASCII_SPACE: Final = (" ", "\t", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f")


@dataclass(frozen=True, slots=True)
class _Layout:
    wanted: list[tuple[str, int | None]]  # (column, position in the file or None when absent)
    width: int  # fields a record needs to reach every present column
    header_width: int  # fields in the header, as every regular line has


def read_csv(stream: BinaryIO, builder: Builder) -> None:
    # utf-8-sig drops a byte-order mark; newline="" keeps CR LF and quoted line breaks for us to handle;
    # surrogateescape lets undecodable bytes through so they can be located by row (_undecodable_at).
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        source = _Source(text)
        layout = _read_header(source, builder)
        if layout is not None:
            _read_body(source, builder, layout)
    finally:
        text.detach()  # the caller owns the binary stream


def _read_header(source: _Source, builder: Builder) -> _Layout | None:
    """The first non-blank record, as the position of each column the builder reads; None if unusable."""
    header: list[str] | None = None
    try:
        for record in csv.reader(source.lines(), strict=True):
            if any(field.strip() for field in record):
                header = record
                break
    except csv.Error as exc:
        _bad_csv(builder, 0, exc)
        return None
    if header is None:
        builder.add_error(0, "", BAD_CSV, "the file is empty: expected a header row naming the columns")
        return None
    if _undecodable_at("".join(header)) >= 0:
        _not_utf8(builder, 0)
        return None

    position: dict[str, int] = {}
    repeated: dict[str, list[int]] = {}  # a column the builder reads, named more than once: which one is meant?
    for index, name in enumerate(header):
        key = name.strip().lower()
        if key in position and key in builder.columns:
            repeated.setdefault(key, [position[key] + 1]).append(index + 1)
        position.setdefault(key, index)
    missing = [column for column in builder.required if column not in position]
    for column in missing:
        builder.add_error(0, column, MISSING_COLUMN, f"the header has no {column!r} column")
    for column, places in repeated.items():
        where = ", ".join(map(str, places[:10]))
        message = f"the header names {column!r} more than once (columns {where}); name each column once"
        builder.add_error(0, column, DUPLICATE_COLUMN, message)
    if missing or repeated:
        return None
    wanted = [(column, position.get(column)) for column in builder.columns]
    width = max(index for _, index in wanted if index is not None) + 1
    return _Layout(wanted=wanted, width=width, header_width=len(header))


def _read_body(source: _Source, builder: Builder, layout: _Layout) -> None:
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
                _read_plain(good, builder, layout, rows_read)
            _not_utf8(builder, rows_read + text.count("\n", 0, bad_at) + 1)
            return
        if _is_plain(text):
            source.consume(end)
            count, failure = _read_plain(text, builder, layout, rows_read), None
        else:
            count, failure = _read_quoted(source, builder, layout, rows_read)
        rows_read += count
        if failure is not None:
            _bad_csv(builder, rows_read + 1, failure)
            return


def _is_plain(text: str) -> bool:
    """No quotes and no bare CR: every line is one record and every comma separates fields."""
    return '"' not in text and ("\r" not in text or text.count("\r") == text.count("\r\n"))


def _read_plain(text: str, builder: Builder, layout: _Layout, rows_read: int) -> int:
    """Whole lines without quotes: every line is one record and every comma a separator."""
    text = text.replace("\r\n", "\n")
    header_width = layout.header_width
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
        non_empty = present if no_empty_fields else frozenset()
        builder.add_chunk(Chunk(rows, columns, is_blank=_blank_line_checker(text), non_empty=non_empty))
    else:
        _add_records(builder, [line.split(",") for line in text.split("\n")], layout, rows)
    return n


def _read_quoted(source: _Source, builder: Builder, layout: _Layout, rows_read: int) -> tuple[int, Exception | None]:
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


def _add_records(builder: Builder, records: list[list[str]], layout: _Layout, rows: Int64Array) -> None:
    width = layout.width
    if min(map(len, records)) < width:
        records = [r if len(r) >= width else r + [""] * (width - len(r)) for r in records]
    columns = {
        column: _column(list(map(itemgetter(index), records)), True) if index is not None else [""] * len(records)
        for column, index in layout.wanted
    }
    builder.add_chunk(Chunk(rows, columns, is_blank=lambda i: not any(field.strip() for field in records[i])))


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


def _blank_line_checker(text: str) -> BlankCheck:
    lines: list[str] = []

    def is_blank(i: int) -> bool:
        if not lines:  # split only when a row might be blank, which is rare
            lines.extend(text.split("\n"))
        return not lines[i].replace(",", "").strip()

    return is_blank


def _column(values: list[str], strip: bool) -> list[str]:
    return list(map(str.strip, values)) if strip else values


def _needs_strip(text: str) -> bool:
    return not text.isascii() or any(space in text for space in _ASCII_SPACE)


def _bad_csv(builder: Builder, row: int, exc: Exception) -> None:
    message = f"malformed CSV at data row {row}: {exc}" if row else f"malformed CSV header: {exc}"
    builder.add_error(row, "", BAD_CSV, message)


def _not_utf8(builder: Builder, row: int) -> None:
    where = f"data row {row}" if row else "the header"
    builder.add_error(row, "", BAD_CSV, f"the file is not valid UTF-8 (in {where})")


def _undecodable_at(text: str) -> int:
    """Position of the first undecodable byte (a lone surrogate after surrogateescape), or -1."""
    if text.isascii():
        return -1
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return -1


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
