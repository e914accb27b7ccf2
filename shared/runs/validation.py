"""Validating sales and lots column-wise, a chunk of rows at a time, into engine batches and row errors.

A source (CSV or JSON) hands a builder chunks of stripped string columns; the builder checks every
field, keeps the valid rows, and at the end drops repeated ids and returns one frozen result. Errors
are kept in (row, column) order, the first ``MAX_ERRORS`` of a file with a count of the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import compress
from operator import not_
from typing import ClassVar, Final

import numpy as np

from shared.base import text_limit
from shared.decimals import COST_SCALE, QTY_SCALE, format_scaled
from shared.ledger.models import Lot
from shared.runs.columns import BoolArray, lengths_of, parse_dates, parse_decimals
from shared.runs.fifo import Int64Array, LotsBatch, RowError, SalesBatch
from shared.runs.models import RunSale

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
TOO_LONG: Final = "TOO_LONG"
# Sources that go record by record (quoted CSV, JSON) hand a builder at most this many rows at a time.
CHUNK_ROWS: Final = 65_536

MISSING_COLUMN: Final = "MISSING_COLUMN"
DUPLICATE_COLUMN: Final = "DUPLICATE_COLUMN"
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
INVALID: Final = "\x00<invalid value>"

BlankCheck = Callable[[int], bool]
Problem = tuple[int, str, str, str]  # (index in chunk, field, reason, message)


@dataclass(frozen=True, slots=True)
class Chunk:
    """A run of data rows as stripped string columns, as a source hands them to a builder."""

    rows: Int64Array  # the 1-based data row of each position
    columns: dict[str, list[str]]  # every column the builder reads; an absent optional one is all ""
    # Asked only of rows whose every value is empty: was the line blank (so not a row at all)?
    # None when the source has no blank lines (JSON).
    is_blank: BlankCheck | None
    non_empty: frozenset[str] = frozenset()  # columns the source knows hold no empty value


@dataclass(frozen=True, slots=True)
class ParsedSales:
    """Valid sales as a batch, every problem found, and the tenant ids the input named."""

    batch: SalesBatch
    errors: list[RowError]
    tenant_ids: frozenset[str]
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
    tenant_ids: frozenset[str]
    row_count: int


class ErrorLog:
    """Keeps the first ``MAX_ERRORS`` errors in (row, column) order and counts the rest."""

    def __init__(self, file: str, columns: Sequence[str]) -> None:
        self._file = file
        self._rank = {name: rank for rank, name in enumerate(columns)}
        self._rank[""] = -1
        self._items: list[tuple[int, int, RowError]] = []
        self._total = 0

    def add(self, row: int, field: str, reason: str, message: str) -> None:
        self._total += 1
        error = RowError(row=row, field=field, reason=reason, message=message, file=self._file)
        self._items.append((row, self._rank[field], error))
        if len(self._items) > 4 * MAX_ERRORS:
            self._prune()

    def _prune(self) -> None:
        self._items.sort(key=lambda item: item[:2])
        del self._items[MAX_ERRORS:]

    def result(self) -> list[RowError]:
        self._prune()
        errors = [error for _, _, error in self._items]
        omitted = self._total - len(errors)
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


# ---------------------------------------------------------------------------------------------
# Builders

Values = dict[str, Int64Array]  # a file's numeric and date columns, parsed, by name


@dataclass(frozen=True, slots=True)
class _Kept:
    """The rows of a file that passed every check, repeated ids removed, in file order."""

    rows: Int64Array
    ids: list[str]
    skus: list[str]
    values: Values


class Builder:
    """Accumulates the validated chunks of one file; subclasses check their own columns and finish."""

    file: ClassVar[str]
    id_column: ClassVar[str]
    columns: ClassVar[tuple[str, ...]]  # every column read, in error-report order
    required: ClassVar[tuple[str, ...]]
    measured: ClassVar[tuple[str, ...]]  # columns parsed as numbers or dates
    value_names: ClassVar[tuple[str, ...]]  # the keys of the parsed values _validate returns

    def __init__(self, *, typed: bool) -> None:
        """``typed`` sources (JSON) may hold values of the wrong type, marked ``INVALID``."""
        self._typed = typed
        self._log = ErrorLog(self.file, self.columns)
        self._tenant_ids: set[str] = set()
        self._row_count = 0
        self._id_values: list[str] = []  # every usable id, for the duplicate check at the end
        self._id_rows: list[Int64Array] = []
        self._kept_rows: list[Int64Array] = []
        self._ids: list[str] = []
        self._skus: list[str] = []
        self._parts: dict[str, list[Int64Array]] = {name: [] for name in self.value_names}

    def add_error(self, row: int, field: str, reason: str, message: str) -> None:
        self._log.add(row, field, reason, message)

    def add_chunk(self, chunk: Chunk) -> None:
        """Check every field of the chunk, log its problems in row order, and keep its valid rows."""
        rows, columns = chunk.rows, chunk.columns
        # Columns parsed as numbers or dates need their lengths anyway; the rest need only emptiness.
        lengths = {name: lengths_of(columns[name]) for name in self.measured}
        empties = {
            name: (
                lengths[name] == 0
                if name in lengths
                else np.zeros(len(values), dtype=bool)
                if name in chunk.non_empty
                else _empty(values)
            )
            for name, values in columns.items()
        }
        live = np.ones(len(rows), dtype=bool)
        if chunk.is_blank is not None:
            candidates = np.logical_and.reduce(list(empties.values()))
            for i in np.flatnonzero(candidates).tolist():
                live[i] = not chunk.is_blank(i)
        self._row_count += int(live.sum())
        tenants = set(compress(columns[TENANT_COLUMN], live.tolist()))
        tenants.discard("")
        self._tenant_ids |= tenants

        problems: list[Problem] = []
        ids = columns[self.id_column]
        id_ok = _check_text(ids, empties[self.id_column], live, self.id_column, problems, typed=self._typed)
        valid, parsed = self._validate(columns, lengths, empties, live, problems)
        keep = valid & id_ok & live
        usable = live & id_ok
        self._id_values.extend(_take(ids, usable, bool(usable.all())))
        self._id_rows.append(rows[usable])
        problems.sort(key=lambda p: p[0])
        for index, field, reason, message in problems:
            self._log.add(int(rows[index]), field, reason, message)

        all_kept = bool(keep.all())
        self._kept_rows.append(rows[keep])
        self._ids.extend(_take(ids, keep, all_kept))
        self._skus.extend(_take(columns["sku"], keep, all_kept))
        for name, parts in self._parts.items():
            parts.append(parsed[name][keep])

    def _validate(
        self,
        columns: dict[str, list[str]],
        lengths: dict[str, Int64Array],
        empties: dict[str, BoolArray],
        live: BoolArray,
        out: list[Problem],
    ) -> tuple[BoolArray, Values]:
        """Check the columns besides the id: which rows pass, and the parsed values by ``value_names``."""
        raise NotImplementedError

    def _finish_rows(self) -> _Kept:
        """The kept rows of every chunk, joined, once repeated ids are reported and dropped."""
        drop = self._duplicate_mask()
        rows = _join(self._kept_rows)
        values = {name: _join(parts) for name, parts in self._parts.items()}
        ids, skus = self._ids, self._skus
        if drop.any():
            keep = ~drop
            rows = rows[keep]
            values = {name: array[keep] for name, array in values.items()}
            ids, skus = _take(ids, keep, False), _take(skus, keep, False)
        return _Kept(rows=rows, ids=ids, skus=skus, values=values)

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
                self._log.add(
                    row, self.id_column, DUPLICATE_ID, f"{self.id_column} {value!r} already appears on row {first}"
                )
        return np.isin(kept_rows, np.array(repeated, dtype=np.int64))


class SalesBuilder(Builder):
    file = "sales"
    id_column = "sale_id"
    columns = (*SALES_COLUMNS, TENANT_COLUMN)
    required = SALES_COLUMNS
    measured = ("sale_date", "quantity_sold")
    value_names = ("sale_date", "quantity")

    def _validate(
        self,
        columns: dict[str, list[str]],
        lengths: dict[str, Int64Array],
        empties: dict[str, BoolArray],
        live: BoolArray,
        out: list[Problem],
    ) -> tuple[BoolArray, Values]:
        sku_ok = _check_text(columns["sku"], empties["sku"], live, "sku", out, typed=self._typed)
        micros, date_ok = _check_date(columns["sale_date"], lengths["sale_date"], live, "sale_date", out)
        quantities = columns["quantity_sold"]
        quantity, qty_ok = _check_decimal(
            quantities, lengths["quantity_sold"], live, field="quantity_sold", scale=QTY_SCALE, out=out
        )
        non_positive = live & qty_ok & (quantity <= 0)
        out.extend(
            (i, "quantity_sold", NON_POSITIVE_QUANTITY, f"quantity_sold must be greater than 0, got {quantities[i]}")
            for i in np.flatnonzero(non_positive).tolist()
        )
        return sku_ok & date_ok & qty_ok & ~non_positive, {"sale_date": micros, "quantity": quantity}

    def finish(self) -> ParsedSales:
        kept = self._finish_rows()
        batch = SalesBatch(
            row=kept.rows,
            sale_id=kept.ids,
            sku=kept.skus,
            sale_date=kept.values["sale_date"].view("datetime64[us]"),
            quantity=kept.values["quantity"],
        )
        return ParsedSales(
            batch=batch,
            errors=self._log.result(),
            tenant_ids=frozenset(self._tenant_ids),
            row_count=self._row_count,
        )


class LotsBuilder(Builder):
    file = "lots"
    id_column = "lot_id"
    columns = (*LOTS_COLUMNS, TENANT_COLUMN)
    required = tuple(c for c in LOTS_COLUMNS if c not in OPTIONAL_LOTS_COLUMNS)
    measured = LOTS_COLUMNS[2:]
    value_names = ("received_date", "original", "remaining", "price", "freight")

    def _validate(
        self,
        columns: dict[str, list[str]],
        lengths: dict[str, Int64Array],
        empties: dict[str, BoolArray],
        live: BoolArray,
        out: list[Problem],
    ) -> tuple[BoolArray, Values]:
        def number(field: str, scale: int, *, default_zero: bool = False) -> tuple[Int64Array, BoolArray]:
            return _check_decimal(
                columns[field], lengths[field], live, field=field, scale=scale, out=out, default_zero=default_zero
            )

        sku_ok = _check_text(columns["sku"], empties["sku"], live, "sku", out, typed=self._typed)
        micros, date_ok = _check_date(columns["received_date"], lengths["received_date"], live, "received_date", out)
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
        values = {
            "received_date": micros,
            "original": original,
            "remaining": remaining,
            "price": price,
            "freight": freight,
        }
        return ok, values

    def finish(self) -> ParsedLots:
        kept = self._finish_rows()
        values = kept.values
        batch = LotsBatch(
            row=kept.rows,
            lot_id=kept.ids,
            sku=kept.skus,
            received_date=values["received_date"].view("datetime64[us]"),
            quantity=values["remaining"],
            unit_cost=values["price"] + values["freight"],
        )
        return ParsedLots(
            batch=batch,
            original_quantity=values["original"],
            unit_price=values["price"],
            freight=values["freight"],
            errors=self._log.result(),
            tenant_ids=frozenset(self._tenant_ids),
            row_count=self._row_count,
        )


# ---------------------------------------------------------------------------------------------
# Per-field checks: each reports the problems of live rows and says which rows passed.


# The longest value each text field may hold (the ledger's and the per-sale rows' columns); longer is a
# TOO_LONG validation error with its row, never a failed write.
MAX_TEXT: Final = {
    "sale_id": text_limit(RunSale, "sale_id"),
    "lot_id": text_limit(Lot, "lot_id"),
    "sku": text_limit(RunSale, "sku"),
}


def _check_text(
    values: list[str], empty: BoolArray, live: BoolArray, field: str, out: list[Problem], *, typed: bool
) -> BoolArray:
    """Required text, at most ``MAX_TEXT[field]`` characters; ``typed`` sources (JSON) may also hold values
    of the wrong type."""
    bad = live & empty
    out.extend((i, field, MISSING_VALUE, f"{field} is required") for i in np.flatnonzero(bad).tolist())
    limit = MAX_TEXT[field]
    if max(map(len, values), default=0) > limit:  # one pass finds whether any row needs a look
        for i, value in enumerate(values):
            if len(value) > limit and live[i] and not bad[i]:
                bad[i] = True
                out.append((i, field, TOO_LONG, f"{field} is {len(value)} characters long; the limit is {limit}"))
    if typed and INVALID in values:
        for i, value in enumerate(values):
            if value == INVALID and live[i]:
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
    value, ok = parse_decimals(values, scale, lengths)
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
    micros, ok = parse_dates(values, lengths)
    out.extend((i, field, MISSING_VALUE, f"{field} is required") for i in np.flatnonzero(live & empty).tolist())
    out.extend(
        (i, field, BAD_DATE, f"{field} must be an ISO 8601 date or date-time, got {_shown(values[i])}")
        for i in np.flatnonzero(live & ~ok & ~empty).tolist()
    )
    return micros, ok


def _shown(text: str) -> str:
    return "a value of the wrong type" if text == INVALID else repr(text)


def _empty(values: list[str]) -> BoolArray:
    blanks = values.count("")
    if blanks in {0, len(values)}:
        return np.full(len(values), blanks > 0, dtype=bool)
    return np.fromiter(map(not_, values), dtype=bool, count=len(values))


def _take(values: list[str], keep: BoolArray, all_kept: bool) -> list[str]:
    return values if all_kept else list(compress(values, keep.tolist()))


def _join(parts: list[Int64Array]) -> Int64Array:
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)
