"""Appending to the ledger: gapless per-tenant `seq`, a SHA-256 hash chain, and COPY for volume.

Every writer goes through `append_batches` (or `append_events` for a handful of events); nothing else
inserts ledger rows. An event's canonical form is its 14 content fields in COPY text encoding joined by
tabs; `hash = sha256(prev_hash + "\\n" + canonical)`. Verification re-derives the same form from stored
rows (`canonical`), so the chain proves both order and content.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

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
COLUMNS = (*CONTENT_COLUMNS, "prev_hash", "hash")
T = TypeVar("T")


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
    encoded bodies in that order, produced chunk by chunk (so encoding overlaps with the COPY)."""

    count: int
    positions: list[npt.NDArray[np.int64]]
    chunks: Callable[[], Iterator[list[str]]]


CHUNK = 50_000


def _pick(values: Any, index: npt.NDArray[np.int64]) -> Any:
    if values is None or isinstance(values, np.ndarray):
        return None if values is None else values[index]
    return [values[i] for i in index.tolist()]


def _subset(batch: EventBatch, index: npt.NDArray[np.int64]) -> EventBatch:
    return EventBatch(
        batch.event_type, sku=_pick(batch.sku, index), lot_id=_pick(batch.lot_id, index),
        quantity=batch.quantity[index], unit_cost=batch.unit_cost[index], amount=batch.amount[index],
        occurred_at=batch.occurred_at[index], reference=_pick(batch.reference, index),
        bin_id=_pick(batch.bin_id, index), reverses_seq=_pick(batch.reverses_seq, index),
    )  # fmt: skip


def prepare_batches(
    batches: Sequence[EventBatch], *, job_id: str, run_id: str | None, in_time_order: bool = False
) -> Prepared:
    """The batches' events in order or, with `in_time_order`, by business time (`occurred_at`, ties kept
    in batch order). A large run's events then extend the ledger's time index at its end instead of at
    random places, which halves the cost of writing them."""
    sizes = [len(b) for b in batches]
    count = sum(sizes)
    owner = np.repeat(np.arange(len(batches)), sizes)
    local = np.concatenate([np.arange(n, dtype=np.int64) for n in sizes]) if count else np.zeros(0, np.int64)
    if in_time_order and count:
        times = np.concatenate([b.occurred_at.astype("datetime64[us]") for b in batches])
        order = np.argsort(times, kind="stable")
    else:
        order = np.arange(count, dtype=np.int64)
    position = np.empty(count, dtype=np.int64)
    position[order] = np.arange(count, dtype=np.int64)

    def chunks() -> Iterator[list[str]]:
        for start in range(0, count, CHUNK):
            chosen = order[start : start + CHUNK]
            bodies = np.empty(len(chosen), dtype=object)
            for k, batch in enumerate(batches):
                mine = owner[chosen] == k
                if mine.any():
                    bodies[mine] = _batch_bodies(_subset(batch, local[chosen][mine]), job_id, run_id)
            yield bodies.tolist()

    return Prepared(count, np.split(position, np.cumsum(sizes)[:-1]), chunks)


def _chained(prefix: str, first: int, prev: str, chunks: Iterator[list[str]], end: list[str]) -> Iterator[str]:
    """COPY text of the events, chunk by chunk: seq, body, prev_hash and hash, hashed as they go. The last
    hash is left in `end` once the iterator is exhausted."""
    sha256 = hashlib.sha256
    seq = first
    for bodies in chunks:
        rows = []
        for body in bodies:
            line = f"{prefix}{seq}\t{body}"
            digest = sha256(f"{prev}\n{line}".encode()).hexdigest()
            rows.append(f"{line}\t{prev}\t{digest}\n")
            prev = digest
            seq += 1
        yield "".join(rows)
    end.append(prev)


def append_prepared(
    session: Session, tenant_id: str, prepared: Prepared, meanwhile: Callable[[], T] | None = None
) -> tuple[Appended, T | None]:
    """Number, chain and COPY the prepared events, encoding and hashing each chunk while the server ingests
    the previous one; `meanwhile` runs after the last chunk is sent, while the server finishes. The ledger
    head's row lock serializes writers of one tenant (they also hold the tenant fence)."""
    if not prepared.count:
        return Appended(0, 0, list(prepared.positions)), meanwhile() if meanwhile else None
    head = session.execute(
        select(LedgerHead.seq, LedgerHead.hash).where(LedgerHead.tenant_id == tenant_id).with_for_update()
    ).one()
    first = int(head.seq) + 1
    last_hash: list[str] = []
    result = None
    with copy_into(session, "ledger_events", COLUMNS) as copy:
        for chunk in _chained(copytext.escape(tenant_id) + "\t", first, str(head.hash), prepared.chunks(), last_hash):
            copy.write(chunk)
        result = meanwhile() if meanwhile else None
    last = first + prepared.count - 1
    session.execute(update(LedgerHead).where(LedgerHead.tenant_id == tenant_id).values(seq=last, hash=last_hash[0]))
    return Appended(first, last, [p + first for p in prepared.positions]), result


def append_encoded(session: Session, tenant_id: str, bodies: Sequence[str]) -> tuple[int, int]:
    """Append events given as encoded bodies (see `_batch_bodies`). Returns the (first, last) seq written
    ((0, 0) when empty)."""

    def chunks() -> Iterator[list[str]]:
        for start in range(0, len(bodies), CHUNK):
            yield list(bodies[start : start + CHUNK])

    written, _ = append_prepared(
        session, tenant_id, Prepared(len(bodies), [np.arange(len(bodies), dtype=np.int64)], chunks)
    )
    return written.first, written.last


def append_batches(
    session: Session, tenant_id: str, batches: Sequence[EventBatch], *, job_id: str, run_id: str | None
) -> Appended:
    """Append the batches in order; returns the seqs written."""
    written, _ = append_prepared(session, tenant_id, prepare_batches(batches, job_id=job_id, run_id=run_id))
    return written


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
