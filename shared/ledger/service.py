"""Appending to the ledger: gapless per-tenant `seq`, the hash chain, and COPY for volume.

Every writer goes through `append_batches` (or `append_events` for a handful of events), or chains and
writes events itself with `lock_head`, `chain` and `write_chained` (runs and rollbacks); nothing else
inserts ledger rows. What is hashed, and how, is `shared.ledger.canonical`; this module numbers events,
chains them after the tenant's head and sends them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.copyio import copy_into
from shared.ledger.canonical import COLUMNS, chain_block, encode_bodies
from shared.tenants.models import LedgerHead


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


def _batch_bodies(batch: EventBatch, job_id: str, run_id: str | None) -> list[str]:
    return encode_bodies(
        event_type=batch.event_type, sku=batch.sku, lot_id=batch.lot_id, bin_id=batch.bin_id,
        quantity=batch.quantity, unit_cost=batch.unit_cost, amount=batch.amount, occurred_at=batch.occurred_at,
        job_id=job_id, run_id=run_id, reference=batch.reference, reverses_seq=batch.reverses_seq,
    )  # fmt: skip


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
    seq, prev = head.seq + 1, head.hash
    data = []
    for bodies in chunks:
        rows, seq, prev = chain_block(tenant_id, seq, prev, bodies)
        block = rows.encode()
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
