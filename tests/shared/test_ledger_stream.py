"""`write_streamed`: a COPY that takes events while another thread chains them (a rollback's reversals). What
it writes must equal a plain append, and a failure in the chaining thread must leave nothing behind."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from sqlalchemy import text

from shared import db
from shared.ledger import verify
from shared.ledger.service import Chained, EventBatch, Head, chain, lock_head, prepare_batches, write_streamed
from tests.support import FACTORY_JOB, create_tenant_direct, ledger_receive

EVENTS = 2_500


def _bodies() -> Iterator[list[str]]:
    """Encoded bodies of EVENTS issues, in chunks of 1,000."""
    n = EVENTS
    batch = EventBatch(
        "ISSUE",
        sku=["A"] * n,
        lot_id=["L1"] * n,
        quantity=np.full(n, -1, dtype=np.int64),
        unit_cost=np.full(n, 20_000, dtype=np.int64),
        amount=np.full(n, -20_000 * 10**4, dtype=np.int64),
        occurred_at=np.full(n, np.datetime64("2024-02-01T00:00:00", "us")),
        reference=[f"S{i}" for i in range(n)],
    )
    bodies = [body for chunk in prepare_batches([batch], job_id=FACTORY_JOB, run_id=None).chunks() for body in chunk]
    for start in range(0, n, 1_000):
        yield bodies[start : start + 1_000]


def _stream(tenant_id: str, chunks: Iterator[list[str]]) -> None:
    blocks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

    def chaining(head: Head) -> Chained:
        try:
            return chain(tenant_id, head, chunks, blocks.put)
        finally:
            blocks.put(None)

    with db.unit_of_work(tenant_id) as session, ThreadPoolExecutor(max_workers=1) as pool:
        head = lock_head(session, tenant_id)
        done = write_streamed(session, iter(blocks.get, None), pool.submit(chaining, head).result)
        assert (done.first, done.last) == (head.seq + 1, head.seq + EVENTS)


def _ledger(tenant_id: str) -> tuple[int, int]:
    with db.unit_of_work(tenant_id) as session:
        events = session.execute(text("SELECT count(*) FROM ledger_events")).scalar_one()
        head = session.execute(text("SELECT seq FROM ledger_heads")).scalar_one()
    return events, head


@pytest.fixture
def tenant(service_urls):
    tenant_id = create_tenant_direct("stream")
    with db.unit_of_work(tenant_id) as session:
        ledger_receive(session, tenant_id, lot_id="L1", sku="A", quantity="9000", unit_cost="2", at="2024-01-01")
    return tenant_id


def test_streamed_events_chain_after_the_head(tenant):
    _stream(tenant, _bodies())
    assert _ledger(tenant) == (1 + EVENTS, 1 + EVENTS)
    with verify.snapshot(tenant) as session:
        result = verify.VerifyResult(tenant)
        verify.verify_chain(session, tenant, result)
    assert result.events == 1 + EVENTS and not result.differences


def test_a_failure_while_chaining_leaves_nothing_written(tenant):
    def failing() -> Iterator[list[str]]:
        chunks = _bodies()
        yield next(chunks)  # this block reaches the COPY before the failure
        raise RuntimeError("chaining failed")

    with pytest.raises(RuntimeError, match="chaining failed"):
        _stream(tenant, failing())
    assert _ledger(tenant) == (1, 1)
