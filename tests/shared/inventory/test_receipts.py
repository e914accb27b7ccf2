"""Receipts on the service: intake accepts a checked receipt as a queued job and writes nothing else; every
refusal writes nothing (no job, no number taken); the worker's posting writes RECEIPT events and lots with
the bins and costs resolved, and checks everything again."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from shared import db
from shared.errors import ValidationFailed
from shared.inventory import master, receipts
from shared.inventory.models import Bin, Item, Vendor
from shared.jobs import service as jobs
from shared.jobs.kinds import JobKind, JobStatus, Queue
from shared.jobs.models import Job
from shared.ledger.models import LedgerEvent, Lot
from shared.registry import queue_for
from shared.tenants.models import TenantCounter
from tests import factories
from tests.factories import MasterData
from tests.support import ledger_receive, ledger_reverse

CLERK = factories.principal("any", "clerk")


@pytest.fixture
def md(db_session: Session, db_tenant: str) -> MasterData:
    return factories.master_data(db_session, db_tenant, skus=("RCV-A", "RCV-B"))


def _line(sku: str = "RCV-A", **extra: Any) -> dict[str, Any]:
    return {"sku": sku, "quantity": "10", "unit_cost": "2.5", **extra}


def _submit(session: Session, tenant_id: str, vendor_id: str, lines: list[dict[str, Any]]) -> Any:
    body = factories.receipt_body(vendor_id, lines)
    accepted = receipts.submit_receipt(session, tenant_id=tenant_id, actor=CLERK, body=body, request_id="req-rcv")
    jobs.number_pending(session)
    return session.get(Job, accepted.id)


def _job_seq(session: Session, tenant_id: str) -> int:
    return int(session.scalar(select(TenantCounter.job_seq).where(TenantCounter.tenant_id == tenant_id)) or 0)


def _ledger_rows(session: Session, tenant_id: str) -> int:
    return int(
        session.scalar(select(func.count()).select_from(LedgerEvent).where(LedgerEvent.tenant_id == tenant_id)) or 0
    )


def test_intake_accepts_a_queued_job_and_writes_nothing_to_the_books(
    db_session: Session, db_tenant: str, md: MasterData
) -> None:
    job = _submit(db_session, db_tenant, md.vendor_id, [_line(), _line("RCV-B", freight_cost_per_unit=0.25)])
    assert (job.kind, queue_for(job.kind), job.status, job.seq) == (
        JobKind.RECEIPT,
        Queue.INVENTORY,
        JobStatus.QUEUED,
        1,
    )
    assert (job.actor_key_id, job.actor_role) == (CLERK.key_id, "clerk")
    assert job.payload["vendor_id"] == md.vendor_id
    assert [(line["sku"], line["quantity"], line["freight_cost_per_unit"]) for line in job.payload["lines"]] == [
        ("RCV-A", "10.0000", "0.0000"),
        ("RCV-B", "10.0000", "0.2500"),
    ]
    [event] = factories.audit_trail(db_session, db_tenant, "receipt.accepted")
    assert (event.target, event.job_id, event.request_id) == (job.id, job.id, "req-rcv")
    assert event.details == {"vendor_id": md.vendor_id, "lines": 2}
    assert _ledger_rows(db_session, db_tenant) == 0
    assert db_session.scalar(select(func.count()).select_from(Lot).where(Lot.tenant_id == db_tenant)) == 0


def _refusal(session: Session, tenant_id: str, vendor_id: str, lines: list[dict[str, Any]]) -> ValidationFailed:
    seq = _job_seq(session, tenant_id)
    with pytest.raises(ValidationFailed) as refused:
        _submit(session, tenant_id, vendor_id, lines)
    assert _job_seq(session, tenant_id) == seq  # no job numbered
    assert factories.audit_trail(session, tenant_id, "receipt.accepted") == []
    return refused.value


def test_the_vendor_must_be_live_and_enabled(db_session: Session, db_tenant: str, md: MasterData) -> None:
    disabled = factories.vendor(db_session, db_tenant, "off", enabled=False)
    deleted = factories.vendor(db_session, db_tenant, "gone")
    master.delete_record(db_session, Vendor, db_tenant, deleted.id, actor=None)
    other = factories.tenant(db_session)
    foreign = factories.vendor(db_session, other)
    factories.master_data(db_session, other, skus=("RCV-A",))
    db.scope_session(db_session, db_tenant)
    reasons = {
        vendor_id: _refusal(db_session, db_tenant, vendor_id, [_line()]).reason
        for vendor_id in ("ven_missing", disabled.id, deleted.id, foreign.id)
    }
    assert reasons == {
        "ven_missing": "MISSING_PARENT",
        disabled.id: "VENDOR_DISABLED",
        deleted.id: "MISSING_PARENT",
        foreign.id: "MISSING_PARENT",
    }


def test_each_line_needs_a_live_item_and_a_live_bin_given_or_by_default(
    db_session: Session, db_tenant: str, md: MasterData
) -> None:
    no_default = factories.item(db_session, db_tenant, "NO-BIN", category_id=md.category_id)
    gone_bin = factories.bin_(db_session, db_tenant, md.hub_id, "gone")
    master.delete_record(db_session, Bin, db_tenant, gone_bin.id, actor=None)
    gone_item = factories.item(db_session, db_tenant, "GONE", category_id=md.category_id)
    master.delete_record(db_session, Item, db_tenant, gone_item.id, actor=None)
    error = _refusal(
        db_session,
        db_tenant,
        md.vendor_id,
        [
            _line(),  # fine: the item's default bin
            _line(no_default.sku),
            _line(no_default.sku, bin_id=md.bin_id),  # fine: a bin given
            _line("GONE"),
            _line(bin_id=gone_bin.id),
            _line("NOPE"),
        ],
    )
    assert error.reason == "MULTIPLE"
    assert [(d["row"], d["field"], d["reason"]) for d in error.details] == [
        (2, "bin_id", "MISSING_PARENT"),
        (4, "sku", "UNKNOWN_SKU"),
        (5, "bin_id", "MISSING_PARENT"),
        (6, "sku", "UNKNOWN_SKU"),
    ]


def test_a_lot_is_received_once_but_a_reversed_lot_may_be_received_anew(
    db_session: Session, db_tenant: str, md: MasterData
) -> None:
    ledger_receive(
        db_session, db_tenant, lot_id="LIVE", sku="RCV-A", quantity="1", unit_cost="1", at="2024-01-01T00:00:00Z"
    )
    reversed_seq = ledger_receive(
        db_session, db_tenant, lot_id="UNDONE", sku="RCV-A", quantity="1", unit_cost="1", at="2024-01-01T00:00:00Z"
    )
    ledger_reverse(db_session, db_tenant, reversed_seq)
    error = _refusal(
        db_session, db_tenant, md.vendor_id, [_line(lot_id="LIVE"), _line(lot_id="NEW"), _line(lot_id="NEW")]
    )
    assert error.reason == "LOT_CONFLICT"
    assert [(d["row"], d["message"]) for d in error.details] == [
        (1, "lot 'LIVE' already exists and is live; a lot is received once"),
        (3, "lot 'NEW' appears twice (rows 2 and 3)"),
    ]
    job = _submit(db_session, db_tenant, md.vendor_id, [_line(lot_id="UNDONE")])
    receipts.post_receipt(db_session, job)
    lot = db_session.scalar(select(Lot).where(Lot.tenant_id == db_tenant, Lot.lot_id == "UNDONE"))
    assert lot is not None
    assert (lot.status, str(lot.remaining_quantity), lot.source_job_id) == ("live", "10.0000", job.id)


def test_a_refusal_counts_every_problem_and_details_the_first_thousand(
    db_session: Session, db_tenant: str, md: MasterData
) -> None:
    error = _refusal(db_session, db_tenant, md.vendor_id, [_line(f"NOPE-{n}") for n in range(1001)])
    assert error.reason == "UNKNOWN_SKU"
    assert "1001 problem(s)" in error.message
    assert len(error.details) == 1000
    assert error.details[-1]["row"] == 1000


def test_posting_writes_receipt_events_and_lots_at_price_plus_freight(
    db_session: Session, db_tenant: str, md: MasterData
) -> None:
    spare = factories.bin_(db_session, db_tenant, md.hub_id, "spare")
    job = _submit(
        db_session,
        db_tenant,
        md.vendor_id,
        [
            _line(quantity="3", unit_cost="1.1", freight_cost_per_unit="0.05"),
            _line("RCV-B", quantity="0.5", unit_cost="4", bin_id=spare.id, lot_id="GIVEN"),
        ],
    )
    result = receipts.post_receipt(db_session, job)
    assert result == {
        "vendor_id": md.vendor_id,
        "lines": 2,
        "total_quantity": "3.5000",
        "total_value": "5.45000000",
        "first_seq": 1,
        "last_seq": 2,
    }
    events = db_session.execute(
        text("""SELECT seq, event_type, sku, lot_id, quantity, unit_cost, amount, bin_id, reference, job_id
                FROM ledger_events WHERE tenant_id = :t ORDER BY seq"""),
        {"t": db_tenant},
    ).all()
    generated = f"RCV-{job.id}-1"  # fixed by the job and line, so a retried job writes the same lot
    assert [tuple(str(v) for v in row) for row in events] == [
        ("1", "RECEIPT", "RCV-A", generated, "3.0000", "1.1500", "3.45000000", md.bin_id, md.vendor_id, job.id),
        ("2", "RECEIPT", "RCV-B", "GIVEN", "0.5000", "4.0000", "2.00000000", spare.id, md.vendor_id, job.id),
    ]
    lots = db_session.execute(
        text("""SELECT lot_id, bin_id, vendor_id, unit_price, freight_cost_per_unit, unit_cost, remaining_quantity,
                       receipt_seq, status
                FROM lots WHERE tenant_id = :t ORDER BY receipt_seq"""),
        {"t": db_tenant},
    ).all()
    assert [tuple(str(v) for v in row) for row in lots] == [
        (generated, md.bin_id, md.vendor_id, "1.1000", "0.0500", "1.1500", "3.0000", "1", "live"),
        ("GIVEN", spare.id, md.vendor_id, "4.0000", "0.0000", "4.0000", "0.5000", "2", "live"),
    ]


def test_posting_checks_again_and_a_vendor_disabled_since_intake_fails_it(
    db_session: Session, db_tenant: str, md: MasterData
) -> None:
    job = _submit(db_session, db_tenant, md.vendor_id, [_line()])
    master.set_vendor_enabled(db_session, db_tenant, md.vendor_id, False, actor=None)
    with pytest.raises(ValidationFailed) as refused:
        receipts.post_receipt(db_session, job)
    assert refused.value.reason == "VENDOR_DISABLED"
    assert _ledger_rows(db_session, db_tenant) == 0
