"""Cycle counts on the service: intake refuses a count whose bin or SKUs are not live, a SKU counted twice, and
a gain certain to lack a cost basis, writing nothing; it defers the gain check to the worker while an earlier
job is pending; the worker's posting consumes shrink oldest first and books a gain as a new lot."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from shared.errors import NotFound, ValidationFailed
from shared.inventory import counts, master, receipts
from shared.inventory.models import Bin, Count, Item
from shared.inventory.schemas import CountCreate
from shared.jobs import service as jobs
from shared.jobs.kinds import JobKind, Queue
from shared.jobs.models import Job
from shared.registry import queue_for
from shared.tenants.models import TenantCounter
from tests import factories
from tests.factories import MasterData
from tests.support import ledger_receive, ledger_reverse

CLERK = factories.principal("any", "clerk")
COUNTED_AT = "2024-08-01T00:00:00Z"


@pytest.fixture
def md(db_session: Session, db_tenant: str) -> MasterData:
    return factories.master_data(db_session, db_tenant, skus=("CNT-A", "CNT-B"))


def _body(bin_id: str, *lines: dict[str, Any], counted_at: str = COUNTED_AT) -> CountCreate:
    return CountCreate.model_validate({"bin_id": bin_id, "counted_at": counted_at, "lines": list(lines)})


def _line(sku: str, counted: str, unit_cost: str | None = None) -> dict[str, Any]:
    return {"sku": sku, "counted_quantity": counted, **({"unit_cost": unit_cost} if unit_cost is not None else {})}


def _submit(session: Session, tenant_id: str, body: CountCreate) -> tuple[Count, Any]:
    count, accepted = counts.submit_count(session, tenant_id=tenant_id, actor=CLERK, body=body, request_id="req-cnt")
    return count, session.get(Job, accepted.id)


def _stock(
    session: Session, tenant_id: str, bin_id: str, lot_id: str, sku: str, quantity: str, cost: str, at: str
) -> int:
    return ledger_receive(
        session, tenant_id, lot_id=lot_id, sku=sku, quantity=quantity, unit_cost=cost, at=at, bin_id=bin_id
    )


def _text(*values: Any) -> tuple[str | None, ...]:
    return tuple(None if v is None else str(v) for v in values)


def _refusal(session: Session, tenant_id: str, body: CountCreate) -> ValidationFailed:
    seq = session.scalar(select(TenantCounter.job_seq).where(TenantCounter.tenant_id == tenant_id))
    with pytest.raises(ValidationFailed) as refused:
        _submit(session, tenant_id, body)
    if refused.value.reason != "NO_COST_BASIS":  # checked after the job is numbered; the edge rolls it back
        assert session.scalar(select(TenantCounter.job_seq).where(TenantCounter.tenant_id == tenant_id)) == seq
    return refused.value


def test_intake_records_the_count_as_a_queued_job(db_session: Session, db_tenant: str, md: MasterData) -> None:
    count, job = _submit(db_session, db_tenant, _body(md.bin_id, _line("CNT-A", "0"), _line("CNT-B", "1.5", "2")))
    assert (job.kind, queue_for(job.kind), job.payload["count_id"]) == (JobKind.COUNT, Queue.INVENTORY, count.id)
    assert (count.job_id, count.bin_id, count.tenant_id) == (job.id, md.bin_id, db_tenant)
    [event] = factories.audit_trail(db_session, db_tenant, "count.accepted")
    assert (event.target, event.job_id, event.request_id) == (count.id, job.id, "req-cnt")
    assert event.details == {"bin_id": md.bin_id, "lines": 2}
    shown = counts.get_count(db_session, db_tenant, count.id)
    assert (shown["status"], shown["error"]) == ("queued", None)
    assert [_text(line["line"], line["counted_quantity"], line["expected_quantity"]) for line in shown["lines"]] == [
        ("1", "0.0000", None),
        ("2", "1.5000", None),
    ]
    listed, cursor = counts.list_counts(db_session, db_tenant, limit=10, cursor=None)
    assert ([c["id"] for c in listed], cursor) == ([count.id], None)


def test_the_bin_and_every_sku_must_be_live_and_counted_once(
    db_session: Session, db_tenant: str, md: MasterData
) -> None:
    gone_bin = factories.bin_(db_session, db_tenant, md.hub_id, "gone")
    master.delete_record(db_session, Bin, db_tenant, gone_bin.id, actor=None)
    gone_item = factories.item(db_session, db_tenant, "GONE", category_id=md.category_id)
    master.delete_record(db_session, Item, db_tenant, gone_item.id, actor=None)
    for bin_id in ("bin_missing", gone_bin.id):
        error = _refusal(db_session, db_tenant, _body(bin_id, _line("CNT-A", "0")))
        assert (error.reason, error.details[0]["field"]) == ("MISSING_PARENT", "bin_id")
    error = _refusal(
        db_session,
        db_tenant,
        _body(md.bin_id, _line("CNT-A", "0"), _line("GONE", "0"), _line("CNT-A", "1"), _line("CNT-B", "0")),
    )
    assert error.reason == "MULTIPLE"
    assert [(d["row"], d["reason"]) for d in error.details] == [(2, "UNKNOWN_SKU"), (3, "DUPLICATE_LINE")]
    assert "rows 1 and 3" in error.details[1]["message"]
    assert db_session.scalars(select(Count.id).where(Count.tenant_id == db_tenant)).all() == []


def test_a_gain_with_no_cost_basis_is_refused_at_intake(db_session: Session, db_tenant: str, md: MasterData) -> None:
    _stock(db_session, db_tenant, md.bin_id, "L1", "CNT-A", "2", "1", "2024-01-01T00:00:00Z")
    error = _refusal(db_session, db_tenant, _body(md.bin_id, _line("CNT-A", "2"), _line("CNT-B", "0.0001")))
    assert error.reason == "NO_COST_BASIS"
    assert [(d["row"], d["field"]) for d in error.details] == [(2, "unit_cost")]


@pytest.mark.parametrize(
    ("history", "accepted"),
    [
        ("a receipt before the count", True),
        ("a receipt at the counted instant", True),
        ("a receipt after the count", False),
        ("a reversed receipt", False),
        ("a receipt in another bin", True),  # the cost basis is the SKU's, not the bin's
    ],
)
def test_a_gain_is_valued_by_the_latest_live_receipt_up_to_the_count(
    db_session: Session, db_tenant: str, md: MasterData, history: str, accepted: bool
) -> None:
    spare = factories.bin_(db_session, db_tenant, md.hub_id, "spare")
    at = {
        "a receipt before the count": "2024-07-31T23:59:59Z",
        "a receipt at the counted instant": COUNTED_AT,
        "a receipt after the count": "2024-08-01T00:00:01Z",
    }.get(history, "2024-07-01T00:00:00Z")
    seq = _stock(
        db_session, db_tenant, spare.id if "another bin" in history else md.bin_id, "L1", "CNT-A", "1", "3", at
    )
    if history == "a reversed receipt":
        ledger_reverse(db_session, db_tenant, seq)
    body = _body(md.bin_id, _line("CNT-A", "5"))
    if accepted:
        _submit(db_session, db_tenant, body)
    else:
        assert _refusal(db_session, db_tenant, body).reason == "NO_COST_BASIS"


@pytest.mark.parametrize(
    "lines",
    [
        [_line("CNT-B", "4", unit_cost="0")],  # a gain valued on its line (a zero cost is a cost)
        [_line("CNT-A", "2")],  # counted as expected
        [_line("CNT-A", "1"), _line("CNT-B", "0")],  # shrink, and nothing of a SKU never stocked
    ],
)
def test_a_gain_valued_on_its_line_or_no_gain_at_all_needs_no_basis(
    db_session: Session, db_tenant: str, md: MasterData, lines: list[dict[str, Any]]
) -> None:
    _stock(db_session, db_tenant, md.bin_id, "L1", "CNT-A", "2", "1", "2024-01-01T00:00:00Z")
    count, _ = _submit(db_session, db_tenant, _body(md.bin_id, *lines))
    assert db_session.get(Count, count.id) is not None


def test_while_an_earlier_job_is_pending_the_gain_check_is_left_to_the_worker(
    db_session: Session, db_tenant: str, md: MasterData
) -> None:
    body = _body(md.bin_id, _line("CNT-B", "1"))
    with pytest.raises(ValidationFailed), db_session.begin_nested():  # the edge rolls the numbered job back
        _submit(db_session, db_tenant, body)
    receipt = factories.receipt_body(md.vendor_id, [{"sku": "CNT-A", "quantity": "1", "unit_cost": "1"}])
    pending = receipts.submit_receipt(db_session, tenant_id=db_tenant, actor=CLERK, body=receipt)
    jobs.number_pending(db_session)
    _, job = _submit(db_session, db_tenant, body)  # the stock it will meet is not known yet
    assert pending.seq is not None and job.seq == pending.seq + 1


def test_a_posted_receipt_is_no_longer_pending_and_values_a_later_gain(
    db_session: Session, db_tenant: str, md: MasterData
) -> None:
    factories.received(db_session, db_tenant, md.vendor_id, [{"sku": "CNT-A", "quantity": "1", "unit_cost": "2.5"}])
    with pytest.raises(ValidationFailed) as refused, db_session.begin_nested():
        _submit(db_session, db_tenant, _body(md.bin_id, _line("CNT-B", "1")))
    assert refused.value.reason == "NO_COST_BASIS"  # checked now: the receipt's job is done
    _submit(db_session, db_tenant, _body(md.bin_id, _line("CNT-A", "3")))


def test_posting_consumes_shrink_oldest_first_and_books_a_gain_as_a_new_lot(
    db_session: Session, db_tenant: str, md: MasterData
) -> None:
    _stock(db_session, db_tenant, md.bin_id, "OLD", "CNT-A", "3", "1", "2024-01-01T00:00:00Z")
    _stock(db_session, db_tenant, md.bin_id, "NEW", "CNT-A", "5", "2", "2024-02-01T00:00:00Z")
    _stock(db_session, db_tenant, md.bin_id, "B1", "CNT-B", "1", "1.5", "2024-03-01T00:00:00Z")
    count, job = _submit(db_session, db_tenant, _body(md.bin_id, _line("CNT-A", "4"), _line("CNT-B", "3")))
    result = counts.post_count(db_session, job)
    assert result == {"count_id": count.id, "lines": 2, "adjustments": 3, "first_seq": 4, "last_seq": 6}
    adjustments = db_session.execute(
        text("""SELECT lot_id, quantity, unit_cost, amount, reference FROM ledger_events
                WHERE tenant_id = :t AND event_type = 'ADJUSTMENT' ORDER BY seq"""),
        {"t": db_tenant},
    ).all()
    gain_lot = f"ADJ-{count.id}-2"
    assert [tuple(str(v) for v in row) for row in adjustments] == [
        ("OLD", "-3.0000", "1.0000", "-3.00000000", count.id),
        ("NEW", "-1.0000", "2.0000", "-2.00000000", count.id),
        (gain_lot, "2.0000", "1.5000", "3.00000000", count.id),  # valued at the SKU's latest receipt
    ]
    remaining: dict[str, str] = dict(
        db_session.execute(
            text("SELECT lot_id, remaining_quantity::text FROM lots WHERE tenant_id = :t"), {"t": db_tenant}
        ).all()
    )
    assert remaining == {"OLD": "0.0000", "NEW": "4.0000", "B1": "1.0000", gain_lot: "2.0000"}
    shown = counts.get_count(db_session, db_tenant, count.id)
    assert [
        _text(line["sku"], line["expected_quantity"], line["difference"], line["unit_cost"], line["amount"])
        for line in shown["lines"]
    ] == [
        ("CNT-A", "8.0000", "-4.0000", None, "-5.00000000"),
        ("CNT-B", "1.0000", "2.0000", "1.5000", "3.00000000"),
    ]


def test_a_count_of_another_tenant_or_an_odd_id_is_not_found(
    db_session: Session, db_tenant: str, md: MasterData
) -> None:
    count, _ = _submit(db_session, db_tenant, _body(md.bin_id, _line("CNT-A", "0")))
    other = factories.tenant(db_session)
    for tenant_id, count_id in ((other, count.id), (db_tenant, "x" * 41), (db_tenant, "cnt_\x00")):
        with pytest.raises(NotFound):
            counts.get_count(db_session, tenant_id, count_id)
