"""Returns and landed costs on the service: while an earlier job is pending intake accepts what it cannot yet
decide, and the worker's posting then refuses it with nothing written."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.errors import ValidationFailed
from shared.inventory import receipts
from shared.jobs import service as jobs
from shared.jobs.models import Job
from shared.landed_costs import service as landed_costs
from shared.landed_costs.schemas import LandedCostCreate
from shared.ledger import verify
from shared.returns import service as returns
from shared.returns.schemas import ReturnCreate
from tests import factories
from tests.support import ledger_receive

CLERK = factories.principal("any", "clerk")
AT = "2024-08-01T00:00:00Z"


def _count(session: Session, sql: str, tenant_id: str) -> int:
    return int(session.scalar(text(sql), {"t": tenant_id}) or 0)


def _pending_receipt(session: Session, tenant_id: str, vendor_id: str, sku: str) -> None:
    body = factories.receipt_body(vendor_id, [{"sku": sku, "quantity": "1", "unit_cost": "1"}])
    receipts.submit_receipt(session, tenant_id=tenant_id, actor=CLERK, body=body)
    jobs.number_pending(session)


def test_the_worker_refuses_a_purchase_return_beyond_the_lot_and_writes_nothing(
    db_session: Session, db_tenant: str
) -> None:
    md = factories.master_data(db_session, db_tenant, skus=("RT-A",))
    ledger_receive(db_session, db_tenant, lot_id="P1", sku="RT-A", quantity="10", unit_cost="5", at=AT)
    body = ReturnCreate.model_validate({"kind": "purchase", "lot_id": "P1", "quantity": "11", "returned_at": AT})
    with pytest.raises(ValidationFailed) as now, db_session.begin_nested():
        returns.submit_return(db_session, tenant_id=db_tenant, actor=CLERK, body=body)
    assert now.value.reason == "INSUFFICIENT_STOCK"  # nothing pending: certain at intake
    _pending_receipt(db_session, db_tenant, md.vendor_id, "RT-A")
    row, accepted = returns.submit_return(db_session, tenant_id=db_tenant, actor=CLERK, body=body)
    job = db_session.get(Job, accepted.id)
    assert job is not None
    events = _count(db_session, "SELECT count(*) FROM ledger_events WHERE tenant_id = :t", db_tenant)
    with pytest.raises(ValidationFailed) as later, db_session.begin_nested():
        returns.post_return(db_session, job)
    assert later.value.reason == "INSUFFICIENT_STOCK"
    assert later.value.details == [
        {"field": "quantity", "reason": "INSUFFICIENT_STOCK", "message": later.value.details[0]["message"]}
    ]
    assert _count(db_session, "SELECT count(*) FROM ledger_events WHERE tenant_id = :t", db_tenant) == events
    assert _count(db_session, "SELECT count(*) FROM return_lines WHERE tenant_id = :t", db_tenant) == 0
    shown = returns.get_return(db_session, db_tenant, row.id)
    assert (shown["status"], shown["lines"], shown["amount"]) == ("queued", [], None)


def test_the_worker_refuses_a_landed_cost_on_a_lot_with_nothing_to_carry_it(
    db_session: Session, db_tenant: str
) -> None:
    factories.master_data(db_session, db_tenant, skus=("RT-B",))
    ledger_receive(db_session, db_tenant, lot_id="P2", sku="RT-B", quantity="1", unit_cost="5", at=AT)
    give_back = ReturnCreate.model_validate({"kind": "purchase", "lot_id": "P2", "quantity": "1", "returned_at": AT})
    _, accepted = returns.submit_return(db_session, tenant_id=db_tenant, actor=CLERK, body=give_back)
    jobs.number_pending(db_session)
    body = LandedCostCreate.model_validate({"lot_id": "P2", "amount": "4", "allocated_at": AT})
    cost, cost_job = landed_costs.submit_landed_cost(db_session, tenant_id=db_tenant, actor=CLERK, body=body)
    returned = db_session.get(Job, accepted.id)
    assert returned is not None
    result = returns.post_return(db_session, returned)
    assert (result["amount"], result["sku"]) == ("-5.00000000", "RT-B")
    job = db_session.get(Job, cost_job.id)
    assert job is not None
    with pytest.raises(ValidationFailed) as refused, db_session.begin_nested():
        landed_costs.post_landed_cost(db_session, job)
    assert refused.value.reason == "NOTHING_TO_ALLOCATE"
    assert _count(db_session, "SELECT count(*) FROM landed_cost_lines WHERE tenant_id = :t", db_tenant) == 0
    assert landed_costs.get_landed_cost(db_session, db_tenant, cost.id)["lines"] == []


def test_verify_rebuilds_a_landed_lots_unit_cost_and_value(db_session: Session, db_tenant: str) -> None:
    factories.master_data(db_session, db_tenant, skus=("RT-C",))
    ledger_receive(db_session, db_tenant, lot_id="P3", sku="RT-C", quantity="4", unit_cost="2.5", at=AT)
    body = LandedCostCreate.model_validate({"lot_id": "P3", "amount": "1", "allocated_at": AT})
    _, accepted = landed_costs.submit_landed_cost(db_session, tenant_id=db_tenant, actor=CLERK, body=body)
    job = db_session.get(Job, accepted.id)
    assert job is not None
    assert landed_costs.post_landed_cost(db_session, job)["unit_cost_increment"] == "0.2500"
    assert verify.derived_differences(db_session, db_tenant) == []

    def lot() -> tuple[str, str, str]:
        row = db_session.execute(
            text(
                "SELECT unit_price, freight_cost_per_unit, unit_cost FROM lots WHERE tenant_id = :t AND lot_id = 'P3'"
            ),
            {"t": db_tenant},
        ).one()
        return (format(row[0], "f"), format(row[1], "f"), format(row[2], "f"))

    assert lot() == ("2.5000", "0.2500", "2.7500")
    db_session.execute(text("UPDATE lots SET unit_cost = 2.5 WHERE tenant_id = :t AND lot_id = 'P3'"), {"t": db_tenant})
    found = verify.derived_differences(db_session, db_tenant)
    assert [(d.check, d.key, d.expected, d.actual) for d in found] == [("lots.unit_cost", "P3", "2.7500", "2.5000")]
    verify.repair_derived(db_session, db_tenant)
    assert verify.derived_differences(db_session, db_tenant) == []
    assert lot() == ("2.5000", "0.2500", "2.7500")
    db_session.execute(text("DELETE FROM lots WHERE tenant_id = :t AND lot_id = 'P3'"), {"t": db_tenant})
    verify.repair_derived(db_session, db_tenant)  # rebuilt from the ledger: receipt cost plus the landed cost
    assert verify.derived_differences(db_session, db_tenant) == []
    assert lot() == ("2.5000", "0.2500", "2.7500")
