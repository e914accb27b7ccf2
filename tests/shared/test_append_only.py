"""History is permanent: the database itself rejects UPDATE, DELETE and TRUNCATE on the ledger, the audit
trail and cycle counts, both for the application's role and for the tables' owner."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from shared import db
from shared.audit import service as audit
from shared.inventory.models import Count, CountLine
from shared.jobs import service as jobs
from shared.jobs.kinds import JobKind, JobStatus
from shared.jobs.models import Job
from shared.ledger.service import NewEvent, append_events
from shared.tenants import service as tenants

TABLES = {
    "ledger_events": "quantity = quantity + 1",
    "audit_events": "outcome = 'rewritten'",
    "counts": "bin_id = 'bin_other'",
    "count_lines": "counted_quantity = 0",
}
STATEMENTS = {
    "update": "UPDATE {table} SET {assignment}",
    "delete": "DELETE FROM {table}",
    "truncate": "TRUNCATE {table} CASCADE",
}


@pytest.fixture(scope="module")
def tenant_id(service_urls):
    tenant_id = f"append-{secrets.token_hex(4)}"
    with db.unit_of_work() as session:
        tenants.create_tenant(
            session, tenant_id=tenant_id, name=tenant_id, plan="free", role_model="standard", actor=None
        )
    with db.unit_of_work(tenant_id) as session:
        accepted = jobs.accept_job(session, tenant_id=tenant_id, kind=JobKind.COUNT, payload={}, actor=None)
        jobs.number_pending(session)
        job = session.get(Job, accepted.id)
        assert job is not None
        job.status = JobStatus.COMPLETED
        when = datetime(2024, 7, 1, tzinfo=UTC)
        append_events(
            session,
            tenant_id,
            [NewEvent("ADJUSTMENT", "SKU-1", "LOT-1", 10_000, 10_000, 10**8, when, bin_id="bin_1")],
            job_id=job.id,
            run_id=None,
        )
        audit.record(session, tenant_id=tenant_id, action="test.recorded", outcome="ok")
        session.add(
            Count(id=f"cnt_{secrets.token_hex(8)}", tenant_id=tenant_id, job_id=job.id, bin_id="bin_1", counted_at=when)
        )
        session.flush()
        count_id = session.scalar(text("SELECT id FROM counts WHERE job_id = :j"), {"j": job.id})
        session.add(
            CountLine(
                count_id=count_id,
                line=1,
                tenant_id=tenant_id,
                sku="SKU-1",
                expected_quantity=0,
                counted_quantity=1,
                difference=1,
                unit_cost=1,
                amount=1,
            )
        )
    return tenant_id


@pytest.mark.parametrize("table", sorted(TABLES))
@pytest.mark.parametrize("statement", sorted(STATEMENTS))
@pytest.mark.parametrize("who", ["application role", "table owner"])
def test_history_cannot_be_rewritten(database_url, tenant_id, table, statement, who):
    owner = who == "table owner"
    engine: Engine = db.make_engine(database_url) if owner else db.get_engine()
    sql = STATEMENTS[statement].format(table=table, assignment=TABLES[table])
    try:
        with engine.begin() as conn:
            # Scoped to the tenant, so row-level security lets the statement reach the rows.
            conn.execute(text("SELECT set_config('asora.tenant_id', :t, true)"), {"t": tenant_id})
            with pytest.raises(DBAPIError, match=r"append-only|permission denied"):
                conn.execute(text(sql))
    finally:
        if owner:
            engine.dispose()
    with db.unit_of_work(tenant_id) as session:
        assert session.scalar(text(f"SELECT count(*) FROM {table} WHERE tenant_id = :t"), {"t": tenant_id}) >= 1
