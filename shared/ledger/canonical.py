"""The canonical form of a ledger event: the bytes its hash covers. Every writer and reader of the chain (the
COPY writer, the verifier, a rollback's reversals rendered in SQL) takes the form from here and nowhere else.

An event's canonical form is its 14 content columns (`CONTENT_COLUMNS`, in that order) in PostgreSQL's COPY
text encoding joined by tabs: text escaped as COPY escapes it, NULL as `\\N`, quantities and unit costs as
fixed-point text with exactly 4 decimals and amounts with exactly 8 (the scales of their NUMERIC columns),
`occurred_at` in UTC as `YYYY-MM-DDTHH:MM:SS.ffffffZ`, integers in decimal. Its hash is
`sha256(prev_hash + "\\n" + canonical)` in hex, `prev_hash` being the hash of the event before (the genesis
hash before the first). Only the hash is stored (as 32 bytes); the verifier re-derives each event's form
from its stored row and its hash from the stored one before it, so the chain proves order and content. The
canonical form is also the event's COPY row (its hash appended), so the writer sends what it hashed.
Changing any of this breaks every stored chain: tests/shared/ledger/test_canonical.py pins fixed hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg import sql

from shared import copytext
from shared.decimals import AMOUNT_SCALE, COST_SCALE, QTY_SCALE, format_scaled
from shared.ledger.models import EventType

GENESIS_HASH = "0" * 64
CONTENT_COLUMNS = (
    "tenant_id", "seq", "event_type", "sku", "lot_id", "bin_id", "quantity", "unit_cost", "amount",
    "occurred_at", "job_id", "run_id", "reference", "reverses_seq",
)  # fmt: skip
# The body: what follows `tenant_id` and `seq`, which the writer knows only when it numbers the events.
BODY_COLUMNS = CONTENT_COLUMNS[2:]
COLUMNS = (*CONTENT_COLUMNS, "hash")  # the previous hash is the previous event's (not stored)
HASH_PREFIX = "\\\\x"  # a bytea in hex, as COPY text (its backslash escaped)
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # copytext.timestamp_column writes the same for whole columns
SQL_TIMESTAMP_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'


def timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def scaled_text(value: int, scale: int) -> str:
    """A scaled integer as canonical fixed-point text."""
    return format_scaled(value, scale)


def decimal_text(value: Decimal, scale: int) -> str:
    """The canonical text of a stored NUMERIC, as the writer formatted it."""
    return format_scaled(int(value.scaleb(scale)), scale)


def canonical(
    tenant_id: str, seq: int, event_type: str, sku: str, lot_id: str, bin_id: str | None, quantity: str,
    unit_cost: str, amount: str, occurred_at: datetime, job_id: str, run_id: str | None,
    reference: str | None, reverses_seq: int | None,
) -> str:  # fmt: skip
    """The canonical form of one event (quantities as fixed-point text: `scaled_text`, `decimal_text`)."""
    e = copytext.escape
    return "\t".join((
        e(tenant_id), str(seq), e(event_type), e(sku), e(lot_id), e(bin_id), quantity, unit_cost, amount,
        timestamp(occurred_at), e(job_id), e(run_id), e(reference),
        copytext.NULL if reverses_seq is None else str(reverses_seq),
    ))  # fmt: skip


def of_stored(row: Sequence[Any]) -> str:
    """The canonical form of a stored event: its `CONTENT_COLUMNS` as read back (NUMERICs as Decimal)."""
    (tenant_id, seq, event_type, sku, lot_id, bin_id, quantity, unit_cost, amount, occurred_at) = row[:10]
    (job_id, run_id, reference, reverses_seq) = row[10:14]
    return canonical(
        tenant_id, seq, event_type, sku, lot_id, bin_id, decimal_text(quantity, QTY_SCALE),
        decimal_text(unit_cost, COST_SCALE), decimal_text(amount, AMOUNT_SCALE), occurred_at, job_id, run_id,
        reference, reverses_seq,
    )  # fmt: skip


def chain_hash(prev_hash: str, canonical_form: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{canonical_form}".encode()).hexdigest()


# --- many events at once (the writer) -------------------------------------------------------------------


def encode_bodies(
    *, event_type: str, sku: Sequence[str], lot_id: Sequence[str], bin_id: Sequence[str | None] | None,
    quantity: npt.NDArray[Any], unit_cost: npt.NDArray[Any], amount: npt.NDArray[Any],
    occurred_at: npt.NDArray[np.datetime64], job_id: str, run_id: str | None,
    reference: Sequence[str | None] | None, reverses_seq: Sequence[int | None] | npt.NDArray[Any] | None,
) -> list[str]:  # fmt: skip
    """Events of one type, column by column, as canonical bodies (`BODY_COLUMNS`), one string per event.
    Scaled integers are int64 or, beyond it, Python ints in object arrays; times UTC datetime64[us]; a column
    given as None is NULL throughout."""
    n = len(sku)
    nulls = [copytext.NULL] * n
    return copytext.join_rows([
        copytext.constant(event_type, n),
        copytext.text_column(sku),
        copytext.text_column(lot_id),
        copytext.text_column(bin_id) if bin_id is not None else nulls,
        copytext.scaled_column(quantity, QTY_SCALE),
        copytext.scaled_column(unit_cost, COST_SCALE),
        copytext.scaled_column(amount, AMOUNT_SCALE),
        copytext.timestamp_column(occurred_at),
        copytext.constant(job_id, n),
        copytext.constant(run_id, n),
        copytext.text_column(reference) if reference is not None else nulls,
        copytext.int_column(reverses_seq) if reverses_seq is not None else nulls,
    ])  # fmt: skip


def chain_block(tenant_id: str, seq: int, prev_hash: str, bodies: Iterable[str]) -> tuple[str, int, str]:
    """Number bodies from `seq`, chain them from `prev_hash`, and render them as COPY rows of `COLUMNS`.
    Returns the rows, the next seq and the last hash. This loop runs once per event of a million-sale run,
    so it stays a plain loop over strings."""
    prefix = copytext.escape(tenant_id) + "\t"
    sha256 = hashlib.sha256
    prev = prev_hash
    rows = []
    for body in bodies:
        line = f"{prefix}{seq}\t{body}"
        digest = sha256(f"{prev}\n{line}".encode()).hexdigest()
        rows.append(f"{line}\t{HASH_PREFIX}{digest}\n")
        prev = digest
        seq += 1
    return "".join(rows), seq, prev


# --- stored events rendered by PostgreSQL ----------------------------------------------------------------


def body_sql(**overrides: sql.Composable) -> sql.Composed:
    """The select list that renders a stored event's body in canonical form: COPY TO text output of it is
    byte for byte what `encode_bodies` makes (COPY escapes text and writes NULL as the writer does, and a
    NUMERIC column prints its declared scale, which is the canonical one). `overrides` replace a column's
    expression, e.g. to render a reversal: each must print in that column's canonical form (a negated
    NUMERIC keeps its scale)."""
    if unknown := set(overrides) - set(BODY_COLUMNS):
        raise ValueError(f"not body columns: {sorted(unknown)}")
    rendered: dict[str, sql.Composable] = {column: sql.Identifier(column) for column in BODY_COLUMNS}
    # UTC to the microsecond, as the writer wrote it, whatever the session's time zone
    rendered["occurred_at"] = sql.SQL("to_char(occurred_at AT TIME ZONE 'UTC', {})").format(SQL_TIMESTAMP_FORMAT)
    rendered.update(overrides)
    return sql.SQL(", ").join(rendered[column] for column in BODY_COLUMNS)


def canonical_sql() -> sql.Composed:
    """The select list that renders a stored event's whole canonical form (COPY TO gives one per line)."""
    return sql.SQL(", ").join([sql.Identifier("tenant_id"), sql.Identifier("seq"), body_sql()])


def reversal_body_sql(*, job_id: str, run_id: str | None) -> sql.Composed:
    """The body of the REVERSAL of a stored event, rendered from it: the same lot, cost, time, bin and
    reference, quantity and amount negated, `reverses_seq` naming the event."""
    return body_sql(
        event_type=sql.Literal(EventType.REVERSAL.value), quantity=sql.SQL("-quantity"), amount=sql.SQL("-amount"),
        job_id=sql.Literal(job_id), run_id=sql.Literal(run_id), reverses_seq=sql.SQL("seq"),
    )  # fmt: skip
