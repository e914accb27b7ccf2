"""Rolling back a run: appending the reversal of every ledger event it wrote, restoring its lots, and
recomputing the costing boundary of its SKUs, fast enough for a million-sale run.

PostgreSQL renders the reversals' canonical bodies (`shared.ledger.canonical`) and the per-lot deltas; Python
only numbers and chains them. The run's events are committed and never change, so two other connections read
them: one streams the bodies to a thread that chains them after the head this transaction holds locked, and
this transaction COPYs each block as soon as it is chained; the other sums the per-lot deltas meanwhile, and
this transaction applies them after the COPY (a lot that a later event consumed blocks the rollback, and the
whole transaction is rolled back).
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from psycopg import sql
from psycopg.abc import Buffer
from sqlalchemy import text
from sqlalchemy.orm import Session

from shared import db
from shared.errors import Conflict
from shared.jobs.models import Job
from shared.ledger import canonical, lots, queries
from shared.ledger.service import Chained, Head, chain, lock_head, write_streamed
from shared.runs import repost
from shared.runs.models import Run, RunStatus


def reverse_run(session: Session, job: Job, run: Run) -> None:
    """Append the reversal of every ISSUE and RECEIPT of the run (in the run's own order, which is business
    time: the reversals then extend the time index in one forward sweep) and of the live COST_ADJUSTMENTs
    reposts made to its sales, restore lot balances and recompute the costing boundary of the run's SKUs."""
    blocks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    events = _run_events(session, run, repost.adjustment_ranges(session, run.tenant_id, run.id))
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="asora-reversal") as pool:
        head = lock_head(session, run.tenant_id)
        # plain values only: the ORM objects belong to this thread's session
        reading = pool.submit(_reversal_events, head, job.id, run.id, run.tenant_id, events, blocks.put)
        summing = pool.submit(_lot_deltas, run.tenant_id, events)
        write_streamed(session, iter(blocks.get, None), reading.result)
        deltas = summing.result()
    try:
        lots.apply_deltas(session, run.tenant_id, [deltas], refuse_negative=True)
    except lots.NegativeBalance as exc:
        shown = ", ".join(exc.lot_ids[:10])
        raise Conflict(
            f"stock received by run '{run.id}' was consumed by later ledger events (lots {shown})",
            reason="ROLLBACK_BLOCKED",
            details=[{"lot_id": lot, "message": "consumed by a later event"} for lot in exc.lot_ids],
        ) from exc
    run.status = RunStatus.ROLLED_BACK
    run.rolled_back_by = job.id
    repost.mark_reversed(session, run.tenant_id, run_id=run.id, job_id=None, by=job.id)
    session.flush()
    _recompute_costed_skus(session, run)


def _recompute_costed_skus(session: Session, run: Run) -> None:
    """The run's sales are no longer costed: recompute the BACKDATED_SALE boundary of its SKUs from the
    runs still live."""
    params = {"t": run.tenant_id, "r": run.id}
    session.execute(
        text("""
        DELETE FROM costed_skus WHERE tenant_id = :t
          AND sku IN (SELECT sku FROM run_skus WHERE tenant_id = :t AND run_id = :r)"""),
        params,
    )
    session.execute(
        text("""
        INSERT INTO costed_skus (tenant_id, sku, last_sale_date)
        SELECT s.tenant_id, s.sku, max(s.last_sale_date) FROM run_skus s JOIN runs r ON r.id = s.run_id
        WHERE s.tenant_id = :t AND r.status = 'completed' AND NOT r.dry_run
          AND s.sku IN (SELECT sku FROM run_skus WHERE tenant_id = :t AND run_id = :r)
        GROUP BY s.tenant_id, s.sku"""),
        params,
    )


def _run_events(session: Session, run: Run, adjustments: list[tuple[int, int]]) -> sql.Composed:
    """The condition selecting the run's ISSUE and RECEIPT events, within its seq range so PostgreSQL reads
    them along the primary key, and the COST_ADJUSTMENTs in the seq ranges of its live reposts."""
    seqs = queries.seq_between(run.first_seq, run.last_seq).compile(
        dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True}
    )
    own = sql.SQL("(event_type IN ('ISSUE', 'RECEIPT') AND {seqs})").format(seqs=sql.SQL(str(seqs)))
    parts = [own] + [
        sql.SQL("(event_type = 'COST_ADJUSTMENT' AND seq BETWEEN {a} AND {b})").format(a=a, b=b) for a, b in adjustments
    ]
    return sql.SQL("tenant_id = {t} AND run_id = {run} AND ({parts})").format(
        t=run.tenant_id, run=run.id, parts=sql.SQL(" OR ").join(parts)
    )


def _lot_deltas(tenant_id: str, events: sql.Composable) -> str:
    """Per lot the run touched: what its reversal adds to the balance, and whether the run received it (so
    the lot is now reversed), as COPY text of `lots.DELTA_COLUMNS`; read on a connection of its own."""
    query = sql.SQL("""
        COPY (SELECT lot_id, -sum(quantity), bool_or(event_type = 'RECEIPT') FROM ledger_events
              WHERE {events} GROUP BY lot_id) TO STDOUT""").format(events=events)
    with _copy_out(tenant_id, query) as copy:
        return b"".join(bytes(chunk) for chunk in copy).decode()


@contextmanager
def _copy_out(tenant_id: str, query: sql.Composable) -> Iterator[Iterable[Buffer]]:
    """A COPY TO on a connection of its own, in the tenant's scope."""
    with db.unit_of_work(tenant_id) as reader:
        raw = reader.connection().connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur, cur.copy(query) as copy:
            yield copy


def _reversal_events(
    head: Head, job_id: str, run_id: str, tenant_id: str, events: sql.Composable, emit: Callable[[bytes | None], None]
) -> Chained:
    """The run's reversal events, in seq order, read on a connection of its own and chained after `head`;
    each block of COPY data goes to `emit` as it is made, and None after the last (also on failure)."""
    query = sql.SQL("COPY (SELECT {body} FROM ledger_events WHERE {events} ORDER BY seq) TO STDOUT").format(
        body=canonical.reversal_body_sql(job_id=job_id, run_id=run_id), events=events
    )
    try:
        with _copy_out(tenant_id, query) as copy:
            return chain(tenant_id, head, _line_blocks(copy), emit)
    finally:
        emit(None)


def _line_blocks(copy: Iterable[Buffer], size: int = 20_000) -> Iterator[list[str]]:
    """COPY TO output (a message per row) as lists of `size` lines without their line ends, as it arrives."""
    rows: list[bytes] = []
    for message in copy:
        rows.append(bytes(message))
        if len(rows) == size:
            yield _lines(rows)
            rows.clear()
    if rows:
        yield _lines(rows)


def _lines(rows: list[bytes]) -> list[str]:
    # Split at "\n" only: COPY escapes it in values, but not U+2028, NEL and the like, which splitlines()
    # would also split at, tearing an event whose reference holds one.
    return b"".join(rows).decode().split("\n")[:-1]
