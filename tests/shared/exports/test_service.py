"""Exports on the service: a request stores canonical parameters and queues a job, or is refused (no data
for the scope, the plan's monthly ceiling counted in UTC calendar months without failed exports) writing
nothing; rendering gives the same bytes and file name for the same ledger state; the content is served only
once the export completed."""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.errors import Conflict, NotFound, PlanLimitExceeded, ValidationFailed
from shared.exports import service as exports
from shared.exports.models import Export, ExportStatus
from shared.jobs import service as jobs
from shared.jobs.kinds import JobKind, Queue
from shared.jobs.models import Job
from shared.registry import queue_for
from shared.reports.schemas import COLUMNS, REPORTS, parse_params
from shared.tenants.models import TenantCounter
from tests import factories
from tests.support import ledger_move, ledger_receive

OWNER = factories.principal("any", "owner")
PARAMS = {
    "stock-on-hand": {"as_of": "2024-03-01"},
    "inventory-movement": {"from": "2024-01-01", "to": "2024-12-31"},
    "receiving-summary": {},
    "shrink-summary": {"sku": 'B,"quoted" Ünïcode'},
    "valuation": {},
}


def _stock(session: Session, tenant_id: str) -> None:
    """Two lots, one of a SKU that needs CSV quoting, and a shrink of it: a row in every report."""
    ledger_receive(
        session,
        tenant_id,
        lot_id="L1",
        sku="A",
        quantity="10",
        unit_cost="1.2345",
        at="2024-01-01T00:00:00Z",
        vendor_id="V1",
    )
    ledger_receive(
        session,
        tenant_id,
        lot_id="L2",
        sku='B,"quoted" Ünïcode',
        quantity="2.5",
        unit_cost="4",
        at="2024-02-01T00:00:00Z",
        vendor_id="V2",
    )
    ledger_move(session, tenant_id, "ADJUSTMENT", lot_id="L2", quantity="-0.5", at="2024-02-10T00:00:00Z")


@pytest.fixture
def stocked(db_session: Session, db_tenant: str) -> str:
    _stock(db_session, db_tenant)
    return db_tenant


def _request(session: Session, tenant_id: str, report: str, raw: dict[str, str]) -> tuple[Export, Any]:
    params = parse_params(report, raw)
    export, accepted = exports.request_export(session, tenant_id=tenant_id, actor=OWNER, report=report, params=params)
    jobs.number_pending(session)
    return export, session.get(Job, accepted.id)


def _job_seq(session: Session, tenant_id: str) -> int:
    return int(session.scalar(select(TenantCounter.job_seq).where(TenantCounter.tenant_id == tenant_id)) or 0)


def test_a_request_stores_canonical_parameters_and_queues_an_export_job(db_session: Session, stocked: str) -> None:
    export, job = _request(db_session, stocked, "stock-on-hand", {"as_of": "2024-02-01T02:00:00+02:00", "sku": "A"})
    canonical = {"as_of": "2024-02-01T00:00:00Z", "sku": "A"}
    assert (export.status, export.report, export.params) == ("queued", "stock-on-hand", canonical)
    assert export.params_hash == hashlib.sha256(b'{"as_of":"2024-02-01T00:00:00Z","sku":"A"}').hexdigest()
    assert (job.kind, queue_for(job.kind), job.payload) == (JobKind.EXPORT, Queue.EXPORTS, {"export_id": export.id})
    assert export.job_id == job.id
    [event] = factories.audit_trail(db_session, stocked, "export.requested")
    assert (event.target, event.outcome, event.job_id, event.actor_role) == (export.id, "accepted", job.id, "owner")
    assert event.details == {"report": "stock-on-hand", "params": canonical}


def test_equal_parameters_spelled_differently_hash_alike(db_session: Session, stocked: str) -> None:
    a, _ = _request(db_session, stocked, "inventory-movement", {"from": "2024-01-01", "to": "2024-02-01T00:00:00Z"})
    b, _ = _request(
        db_session, stocked, "inventory-movement", {"to": "2024-02-01T01:00:00+01:00", "from": "2024-01-01"}
    )
    c, _ = _request(db_session, stocked, "inventory-movement", {"from": "2024-01-01", "to": "2024-02-01"})
    assert a.params == b.params
    assert a.params_hash == b.params_hash
    assert c.params_hash != a.params_hash  # a date and an instant are different parameters


@pytest.mark.parametrize(
    ("report", "raw"),
    [("stock-on-hand", {}), ("stock-on-hand", {"sku": "NOT-STOCKED"}), ("shrink-summary", {"to": "2024-01-01"})],
)
def test_no_data_for_the_scope_is_refused_and_writes_nothing(
    db_session: Session, db_tenant: str, report: str, raw: dict[str, str]
) -> None:
    if raw:
        _stock(db_session, db_tenant)
    with pytest.raises(ValidationFailed) as refused:
        _request(db_session, db_tenant, report, raw)
    assert (refused.value.reason, refused.value.details[0]["field"]) == ("NO_DATA", "params")
    assert _job_seq(db_session, db_tenant) == 0
    assert db_session.scalar(select(func.count()).select_from(Export).where(Export.tenant_id == db_tenant)) == 0


def _export_at(session: Session, tenant_id: str, created_at: datetime, status: str = "queued") -> None:
    """An export made at another time (or already failed), as its request would have left it."""
    job = jobs.accept_job(session, tenant_id=tenant_id, kind=JobKind.EXPORT, payload={}, actor=None)
    session.add(
        Export(
            id=f"exp_{job.id}",
            tenant_id=tenant_id,
            job_id=job.id,
            report="valuation",
            params={},
            params_hash=exports.params_digest({}),
            status=status,
            created_at=created_at,
        )
    )
    session.flush()


def test_the_monthly_ceiling_counts_this_utc_months_exports_that_did_not_fail(db_session: Session) -> None:
    tenant_id = factories.tenant(db_session, plan="free")  # 5 exports per calendar month
    _stock(db_session, tenant_id)
    month_start = db_session.scalar(select(exports.MONTH_START))
    assert month_start is not None
    _export_at(db_session, tenant_id, month_start - timedelta(microseconds=1))  # last month: not counted
    _export_at(db_session, tenant_id, month_start, status="failed")  # produced nothing: not counted
    _export_at(db_session, tenant_id, month_start)  # the first instant of the month: counted
    assert exports.exports_this_month(db_session, tenant_id) == 1
    for _ in range(4):
        _request(db_session, tenant_id, "valuation", {})
    seq = _job_seq(db_session, tenant_id)
    with pytest.raises(PlanLimitExceeded) as refused:
        _request(db_session, tenant_id, "valuation", {})
    assert (refused.value.status_code, refused.value.reason) == (402, "EXPORTS_PER_MONTH")
    assert refused.value.details[0] | {"message": ""} == {
        "limit": "exports_per_month",
        "used": 5,
        "max": 5,
        "message": "",
    }
    assert _job_seq(db_session, tenant_id) == seq
    assert exports.exports_this_month(db_session, tenant_id) == 5


# --- rendering and reading back ---------------------------------------------------------------------------


def _rendered(session: Session, tenant_id: str, report: str, raw: dict[str, str]) -> Export:
    export, _ = _request(session, tenant_id, report, raw)
    exports.render_export(session, export)
    session.flush()
    return export


@pytest.mark.parametrize("report", REPORTS)
def test_the_same_ledger_state_renders_the_same_bytes_and_file_name(
    db_session: Session, stocked: str, report: str
) -> None:
    first = _rendered(db_session, stocked, report, PARAMS[report])
    second = _rendered(db_session, stocked, report, PARAMS[report])
    assert first.id != second.id
    assert first.content is not None
    assert (second.content, second.filename, second.sha256) == (first.content, first.filename, first.sha256)
    assert first.filename == f"{stocked}_{report}_{first.params_hash[:12]}_3.csv"  # three ledger events
    assert first.sha256 == hashlib.sha256(first.content).hexdigest()
    assert (first.status, first.ledger_seq, first.size) == ("completed", 3, len(first.content))
    assert first.finished_at is not None
    text = first.content.decode("utf-8")
    assert not text.startswith("\ufeff")
    assert "\r" not in text
    assert text.endswith("\n")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == list(COLUMNS[report])
    assert first.row_count is not None
    assert len(rows) - 1 == first.row_count > 0


def test_a_new_ledger_event_renames_the_file_but_keeps_the_parameter_hash(db_session: Session, stocked: str) -> None:
    before = _rendered(db_session, stocked, "valuation", {})
    ledger_move(db_session, stocked, "ADJUSTMENT", lot_id="L1", quantity="-1", at="2024-03-01T00:00:00Z")
    after = _rendered(db_session, stocked, "valuation", {})
    assert after.params_hash == before.params_hash
    assert (before.filename, after.filename) == (
        f"{stocked}_valuation_{before.params_hash[:12]}_3.csv",
        f"{stocked}_valuation_{before.params_hash[:12]}_4.csv",
    )
    assert after.content != before.content


def test_csv_fields_are_quoted_only_when_needed_and_absent_values_are_empty() -> None:
    columns = COLUMNS["receiving-summary"]
    row = dict.fromkeys(columns, "x") | {columns[0]: None, columns[1]: 'B,"quoted"'}
    content = exports.render_csv("receiving-summary", [row])
    assert content.split(b"\n")[1].startswith(b',"B,""quoted"""')


def test_rendering_with_no_rows_left_is_no_data_and_leaves_the_export_unfinished(
    db_session: Session, db_tenant: str
) -> None:
    ledger_receive(db_session, db_tenant, lot_id="L1", sku="A", quantity="1", unit_cost="1", at="2024-01-01T00:00:00Z")
    export, _ = _request(db_session, db_tenant, "stock-on-hand", {"sku": "A"})
    ledger_move(db_session, db_tenant, "ISSUE", lot_id="L1", quantity="-1", at="2024-01-02T00:00:00Z")
    with pytest.raises(ValidationFailed) as refused:
        exports.render_export(db_session, export)
    assert refused.value.reason == "NO_DATA"
    assert (export.status, export.filename, export.content) == ("queued", None, None)


def test_content_is_served_once_completed_and_never_for_a_failed_export(db_session: Session, stocked: str) -> None:
    export, _ = _request(db_session, stocked, "valuation", {})
    for status in (ExportStatus.QUEUED, ExportStatus.RUNNING):
        export.status = status
        db_session.flush()
        with pytest.raises(Conflict) as not_ready:
            exports.export_content(db_session, stocked, export.id)
        assert (not_ready.value.status_code, not_ready.value.reason) == (409, "EXPORT_NOT_READY")
    exports.render_export(db_session, export)
    db_session.flush()
    served, content = exports.export_content(db_session, stocked, export.id)
    assert (served.id, content) == (export.id, export.content)

    failed, _ = _request(db_session, stocked, "valuation", {})
    failed.status, failed.error = ExportStatus.FAILED, {"code": "VALIDATION_FAILED", "reason": "NO_DATA"}
    db_session.flush()
    with pytest.raises(ValidationFailed) as refused:
        exports.export_content(db_session, stocked, failed.id)
    assert (refused.value.status_code, refused.value.reason) == (422, "EXPORT_FAILED")
    assert refused.value.details == [failed.error]


def test_another_tenants_export_is_not_found(db_session: Session, stocked: str) -> None:
    export, _ = _request(db_session, stocked, "valuation", {})
    other = factories.tenant(db_session)
    for read in (exports.get_export, exports.export_content):
        with pytest.raises(NotFound):
            read(db_session, other, export.id)
