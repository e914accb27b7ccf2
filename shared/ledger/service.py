"""Appending to the ledger: gapless per-tenant `seq`, a SHA-256 hash chain, and COPY for volume.

Every writer goes through `append_batches` (or `append_events` for a handful of events), or chains and
writes events itself with `lock_head`, `chain` and `write_chained` (runs and rollbacks); nothing else
inserts ledger rows. An event's canonical form is its 14 content fields in COPY text encoding joined by
tabs; `hash = sha256(prev_hash + "\\n" + canonical)`, where `prev_hash` is the hash of the event before (the
genesis hash before the first). Only `hash` is stored (as 32 bytes); verification re-derives the canonical form
from stored rows (`canonical`) and each hash from the stored one before it, so the chain proves both order and
content.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared import copytext
from shared.copyio import copy_into
from shared.runs.decimals import AMOUNT_SCALE, COST_SCALE, QTY_SCALE, format_scaled
from shared.tenants.models import LedgerHead

GENESIS_HASH = "0" * 64
CONTENT_COLUMNS = (
    "tenant_id", "seq", "event_type", "sku", "lot_id", "bin_id", "quantity", "unit_cost", "amount",
    "occurred_at", "job_id", "run_id", "reference", "reverses_seq",
)  # fmt: skip
COLUMNS = (*CONTENT_COLUMNS, "hash")  # the previous hash is the previous event's (not stored)
HASH_PREFIX = "\\\\x"  # a bytea in hex, as COPY text (its backslash escaped)


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Events of one type in columns. Quantities/unit costs are int64 scaled 10^4, amounts scaled 10^8
    (int64, or Python ints in an object array), all signed; times are UTC datetime64[us]."""

    event_type: str
    sku: Sequence[str]
    lot_id: Sequence[str]
    quantity: npt.NDArray[Any]
    unit_cost: npt.NDArray[Any]
    amount: npt.NDArray[Any]
    occurred_at: npt.NDArray[np.datetime64]
    reference: Sequence[str | None] | None = None
    bin_id: Sequence[str | None] | None = None
    reverses_seq: Sequence[int | None] | npt.NDArray[Any] | None = None

    def __len__(self) -> int:
        return len(self.sku)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """One event, for writers that append a few at a time (receipts, counts)."""

    event_type: str
    sku: str
    lot_id: str
    quantity: int
    unit_cost: int
    amount: int
    occurred_at: datetime
    reference: str | None = None
    bin_id: str | None = None
    reverses_seq: int | None = None


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(
    tenant_id: str, seq: int, event_type: str, sku: str, lot_id: str, bin_id: str | None, quantity: str,
    unit_cost: str, amount: str, occurred_at: datetime, job_id: str, run_id: str | None,
    reference: str | None, reverses_seq: int | None,
) -> str:  # fmt: skip
    """The canonical form of one event (quantities as fixed-point text: see `decimal_text`)."""
    e = copytext.escape
    return "\t".join((
        e(tenant_id), str(seq), e(event_type), e(sku), e(lot_id), e(bin_id), quantity, unit_cost, amount,
        _timestamp(occurred_at), e(job_id), e(run_id), e(reference),
        copytext.NULL if reverses_seq is None else str(reverses_seq),
    ))  # fmt: skip


def chain_hash(prev_hash: str, canonical_form: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{canonical_form}".encode()).hexdigest()


def decimal_text(value: Decimal, scale: int) -> str:
    """The canonical text of a stored NUMERIC, as the writer formatted it."""
    return format_scaled(int(value.scaleb(scale)), scale)


def _batch_bodies(batch: EventBatch, job_id: str, run_id: str | None) -> list[str]:
    """Encoded content fields after `tenant_id` and `seq` (event_type ... reverses_seq), one per event."""
    n = len(batch)
    return copytext.join_rows([
        copytext.constant(batch.event_type, n),
        copytext.text_column(batch.sku),
        copytext.text_column(batch.lot_id),
        copytext.text_column(batch.bin_id) if batch.bin_id is not None else [copytext.NULL] * n,
        copytext.scaled_column(batch.quantity, QTY_SCALE),
        copytext.scaled_column(batch.unit_cost, COST_SCALE),
        copytext.scaled_column(batch.amount, AMOUNT_SCALE),
        copytext.timestamp_column(batch.occurred_at),
        copytext.constant(job_id, n),
        copytext.constant(run_id, n),
        copytext.text_column(batch.reference) if batch.reference is not None else [copytext.NULL] * n,
        copytext.int_column(batch.reverses_seq) if batch.reverses_seq is not None else [copytext.NULL] * n,
    ])  # fmt: skip


@dataclass(frozen=True, slots=True)
class Appended:
    """What an append wrote: the seq range and, per batch, the seq of each of its events."""

    first: int
    last: int
    seqs: list[npt.NDArray[np.int64]]


@dataclass(frozen=True, slots=True)
class Prepared:
    """Events ready to append: how many, the position in ledger order of each batch's events, and their
    encoded bodies in that order (computed when asked for, in chunks)."""

    count: int
    positions: list[npt.NDArray[np.int64]]
    chunks: Callable[[], Iterator[list[str]]]


CHUNK = 50_000


def prepare_batches(
    batches: Sequence[EventBatch], *, job_id: str, run_id: str | None, in_time_order: bool = False
) -> Prepared:
    """The batches' events in order or, with `in_time_order`, by business time (`occurred_at`, ties kept
    in batch order). A large run's events then extend the ledger's time index at its end instead of at
    random places, which halves the cost of writing them."""
    sizes = [len(b) for b in batches]
    count = sum(sizes)
    if in_time_order and count:
        times = np.concatenate([b.occurred_at.astype("datetime64[us]") for b in batches])
        order = np.argsort(times, kind="stable")
    else:
        order = np.arange(count, dtype=np.int64)
    position = np.empty(count, dtype=np.int64)
    position[order] = np.arange(count, dtype=np.int64)

    def chunks() -> Iterator[list[str]]:
        # Columns encode fastest whole (each distinct value once); the bodies are then put in ledger order.
        bodies: list[str] = []
        for batch in batches:
            if len(batch):
                bodies += _batch_bodies(batch, job_id, run_id)
        if in_time_order:
            bodies = [bodies[i] for i in order.tolist()]
        for start in range(0, count, CHUNK):
            yield bodies[start : start + CHUNK]

    return Prepared(count, np.split(position, np.cumsum(sizes)[:-1]), chunks)


@dataclass(frozen=True, slots=True)
class Head:
    """The tenant's last ledger event (seq 0 and the genesis hash before the first)."""

    seq: int
    hash: str


def lock_head(session: Session, tenant_id: str) -> Head:
    """The tenant's ledger head, locked until commit: its row lock serializes writers of one tenant (they
    also hold the tenant fence), so the head cannot move between chaining events and writing them."""
    row = session.execute(
        select(LedgerHead.seq, LedgerHead.hash).where(LedgerHead.tenant_id == tenant_id).with_for_update()
    ).one()
    return Head(int(row.seq), str(row.hash))


@dataclass(frozen=True, slots=True)
class Chained:
    """Events numbered and hash-chained after a head, as COPY data ready to send."""

    tenant_id: str
    first: int
    last: int
    last_hash: str
    data: list[bytes]


def chain(
    tenant_id: str, head: Head, chunks: Iterable[Sequence[str]], emit: Callable[[bytes], None] | None = None
) -> Chained:
    """Number the encoded bodies after `head` and chain their hashes. Pure CPU work: a writer does it while
    PostgreSQL is busy with something else, so that the COPY itself is a plain transfer. The COPY data is
    kept in the result, or handed to `emit` block by block as it is made (for `write_streamed`)."""
    prefix = copytext.escape(tenant_id) + "\t"
    sha256 = hashlib.sha256
    seq, prev = head.seq + 1, head.hash
    data = []
    for bodies in chunks:
        rows = []
        for body in bodies:
            line = f"{prefix}{seq}\t{body}"
            digest = sha256(f"{prev}\n{line}".encode()).hexdigest()
            rows.append(f"{line}\t{HASH_PREFIX}{digest}\n")
            prev = digest
            seq += 1
        block = "".join(rows).encode()
        if emit is None:
            data.append(block)
        else:
            emit(block)
    return Chained(tenant_id, head.seq + 1, seq - 1, prev, data)


def write_chained(session: Session, chained: Chained) -> None:
    """COPY chained events and move the head (locked by `lock_head` in this transaction) past them."""
    if chained.last < chained.first:
        return
    with copy_into(session, "ledger_events", COLUMNS) as copy:
        for block in chained.data:
            copy.write(block)
    _move_head(session, chained)


def write_streamed(session: Session, blocks: Iterable[bytes], chained: Callable[[], Chained]) -> Chained:
    """COPY events while another thread chains them: `blocks` yields each block as `chain(..., emit=...)` makes
    it and ends when chaining does; `chained()` then gives the result (or raises what chaining raised, and
    the transaction with the COPY in it is rolled back). Moves the head like `write_chained`."""
    with copy_into(session, "ledger_events", COLUMNS) as copy:
        for block in blocks:
            copy.write(block)
    done = chained()
    if done.last >= done.first:
        _move_head(session, done)
    return done


def _move_head(session: Session, chained: Chained) -> None:
    session.execute(
        update(LedgerHead)
        .where(LedgerHead.tenant_id == chained.tenant_id)
        .values(seq=chained.last, hash=chained.last_hash)
    )


def appended(prepared: Prepared, chained: Chained) -> Appended:
    return Appended(chained.first, chained.last, [p + chained.first for p in prepared.positions])


def append_prepared(session: Session, tenant_id: str, prepared: Prepared) -> Appended:
    """Number, chain and COPY prepared events."""
    if not prepared.count:
        return Appended(0, 0, list(prepared.positions))
    chained = chain(tenant_id, lock_head(session, tenant_id), prepared.chunks())
    write_chained(session, chained)
    return appended(prepared, chained)


def append_batches(
    session: Session, tenant_id: str, batches: Sequence[EventBatch], *, job_id: str, run_id: str | None
) -> Appended:
    """Append the batches in order; returns the seqs written."""
    return append_prepared(session, tenant_id, prepare_batches(batches, job_id=job_id, run_id=run_id))


def append_events(
    session: Session, tenant_id: str, events: Sequence[NewEvent], *, job_id: str, run_id: str | None
) -> tuple[int, int]:
    """Append individual events (kept in the given order)."""
    batches = [
        EventBatch(
            event_type=e.event_type, sku=[e.sku], lot_id=[e.lot_id], quantity=np.array([e.quantity], dtype=object),
            unit_cost=np.array([e.unit_cost], dtype=object), amount=np.array([e.amount], dtype=object),
            occurred_at=np.array([np.datetime64(e.occurred_at.astimezone(UTC).replace(tzinfo=None), "us")]),
            reference=[e.reference], bin_id=[e.bin_id], reverses_seq=[e.reverses_seq],
        )
        for e in events
    ]  # fmt: skip
    written = append_batches(session, tenant_id, batches, job_id=job_id, run_id=run_id)
    return written.first, written.last
