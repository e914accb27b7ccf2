"""A Python client generated from the live schema (`GET /openapi.json` of the running stack, by
openapi-python-client, into a temporary directory) does the whole workflow, every call through a generated
function: onboarding (the operator creates a tenant and its owner key), master data, a receipt, a JSON run, a
CSV upload run, polling jobs, a rollback, the journal entries, a report and an export. If the schema leaves
out a body, a content type, a parameter or a response shape, the client cannot be generated, cannot make the
call, or cannot read the answer."""

from __future__ import annotations

import importlib
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import OPERATOR_KEY
from tests.support import unique_tenant

PACKAGE = "asora_generated_client"
SALES_CSV = b"sale_id,sku,sale_date,quantity_sold\nS-CSV-1,WIDGET-B,2024-07-15,3\n"
LOTS_CSV = (
    b"lot_id,sku,received_date,original_quantity,remaining_quantity,unit_price,freight_cost_per_unit\n"
    b"LOT-B1,WIDGET-B,2024-07-02,10,10,3.3333,0\n"
)


class Generated:
    """The generated package: `gen.op("runs", "runs_create")` is a generated endpoint module."""

    def __init__(self, package: Any) -> None:
        self.package = package
        self.models = importlib.import_module(f"{PACKAGE}.models")
        self.types = importlib.import_module(f"{PACKAGE}.types")

    def op(self, tag: str, operation_id: str) -> Any:
        return importlib.import_module(f"{PACKAGE}.api.{tag}.{operation_id}")

    def client(self, base: str, key: str) -> Any:
        return self.package.AuthenticatedClient(base_url=base, token=key, raise_on_unexpected_status=True, timeout=60)


@pytest.fixture(scope="module")
def gen(shared_stack: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    workdir = tmp_path_factory.mktemp("generated-client")
    document = httpx.get(f"{shared_stack}/openapi.json", timeout=30)
    assert document.status_code == 200, document.text
    (workdir / "openapi.json").write_text(document.text)
    (workdir / "config.json").write_text(
        json.dumps(
            {"project_name_override": "asora-generated-client", "package_name_override": PACKAGE, "post_hooks": []}
        )
    )
    generator = Path(sys.executable).with_name("openapi-python-client")
    result = subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            "openapi.json",
            "--config",
            "config.json",
            "--meta",
            "none",
            "--output-path",
            PACKAGE,
            "--fail-on-warning",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(workdir))
    try:
        yield Generated(importlib.import_module(PACKAGE))
    finally:
        sys.path.remove(str(workdir))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def _ok(response: Any, status: int) -> Any:
    assert response.status_code == status, (response.status_code, response.content[:500])
    return response.parsed


def _wait(gen: Generated, client: Any, job_id: str) -> Any:
    jobs_get = gen.op("jobs", "jobs_get")
    status = gen.models.JobStatus
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = _ok(jobs_get.sync_detailed(job_id, client=client), 200)
        if job.status in (status.COMPLETED, status.FAILED):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_the_workflow_through_the_generated_client(gen: Generated, shared_stack: str) -> None:
    m = gen.models
    operator = gen.client(shared_stack, OPERATOR_KEY)

    # Onboarding: the operator creates the tenant and its owner key (naming the tenant in X-Tenant-ID).
    tenant_id = unique_tenant("gen")
    body = m.TenantCreate(
        tenant_id=tenant_id,
        name="Generated",
        plan=m.TenantCreatePlan.ENTERPRISE,
        role_model=m.TenantCreateRoleModel.STANDARD,
    )
    tenant = _ok(gen.op("tenants", "tenants_create").sync_detailed(client=operator, body=body), 201)
    assert (tenant.tenant_id, tenant.plan, tenant.created_at.tzinfo) == (tenant_id, m.TenantOutPlan.ENTERPRISE, UTC)
    keys_create = gen.op("tenants", "keys_create")
    key = _ok(
        keys_create.sync_detailed(
            client=operator, body=m.KeyCreate(role=m.KeyCreateRole.OWNER, name="owner"), x_tenant_id=tenant_id
        ),
        201,
    )
    assert key.tenant_id == tenant_id and key.role == m.KeyCreatedRole.OWNER
    owner = gen.client(shared_stack, key.key)

    # Master data in onboarding order; vendor eligibility takes no body.
    def create(noun: str, model: Any) -> Any:
        return _ok(gen.op("inventory", f"{noun}_create").sync_detailed(client=owner, body=model), 201)

    category = create("categories", m.CategoryCreate(name="general"))
    hub = create("hubs", m.HubCreate(name="main"))
    bin_ = create("bins", m.BinCreate(hub_id=hub.id, name="A-01"))
    vendor = create("vendors", m.VendorCreate(name="Acme Supply"))
    for sku in ("WIDGET-A", "WIDGET-B", "WIDGET-C"):
        create("items", m.ItemCreate(sku=sku, name=sku, category_id=category.id, default_bin_id=bin_.id))
    assert not _ok(gen.op("inventory", "vendors_disable").sync_detailed(vendor.id, client=owner), 200).enabled
    assert _ok(gen.op("inventory", "vendors_enable").sync_detailed(vendor.id, client=owner), 200).enabled
    items = _ok(gen.op("inventory", "items_list").sync_detailed(client=owner, limit=10), 200)
    assert sorted(i.sku for i in items.items) == ["WIDGET-A", "WIDGET-B", "WIDGET-C"] and items.next_cursor is None

    # A receipt (decimals as strings) and the stock it leaves.
    line = m.ReceiptLineIn(sku="WIDGET-C", quantity="12.5", unit_cost="2.4", bin_id=bin_.id, lot_id="RCPT-C1")
    receipt = m.ReceiptCreate(vendor_id=vendor.id, received_at=datetime(2024, 7, 1, tzinfo=UTC), lines=[line])
    accepted = _ok(gen.op("receipts", "receipts_create").sync_detailed(client=owner, body=receipt), 202)
    assert accepted.kind == m.JobKind.RECEIPT
    assert _wait(gen, owner, accepted.job_id).status == m.JobStatus.COMPLETED

    # A JSON run: FIFO over two lots, 120 + 5 sold.
    runs_create, runs_get = gen.op("runs", "runs_create"), gen.op("runs", "runs_get")

    def sale(sale_id: str, date: str, quantity: str | int) -> Any:
        return m.RunCreateSalesDataItem(sale_id=sale_id, sku="WIDGET-A", sale_date=date, quantity_sold=quantity)

    def lot(lot_id: str, date: str, quantity: int, price: str, freight: str = "0") -> Any:
        return m.RunCreateLotsDataItem(
            lot_id=lot_id,
            sku="WIDGET-A",
            received_date=date,
            original_quantity=quantity,
            remaining_quantity=quantity,
            unit_price=price,
            freight_cost_per_unit=freight,
        )

    run_body = m.RunCreate(
        sales_data=[sale("S-1", "2024-07-10T12:00:00Z", "120"), sale("S-2", "2024-07-11", 5)],
        lots_data=[lot("LOT-A1", "2024-07-01", 100, "10.00", "0.50"), lot("LOT-A2", "2024-07-05", 50, "11")],
    )
    json_run = _ok(runs_create.sync_detailed(client=owner, body=run_body, idempotency_key=f"json-{tenant_id}"), 202)
    assert json_run.status == m.RunStatus.QUEUED
    assert _wait(gen, owner, json_run.job_id).status == m.JobStatus.COMPLETED
    run = _ok(runs_get.sync_detailed(json_run.run_id, client=owner), 200)
    assert run.status == m.RunStatus.COMPLETED
    # 100 x 10.50 + 20 x 11.00 (S-1) + 5 x 11.00 (S-2)
    assert (Decimal(run.total_cogs), Decimal(run.total_quantity)) == (Decimal("1325.00"), Decimal(125))
    sales = _ok(gen.op("runs", "runs_sales").sync_detailed(json_run.run_id, client=owner), 200)
    assert {s.sale_id: Decimal(s.cogs) for s in sales.items} == {"S-1": Decimal("1270"), "S-2": Decimal("55")}

    # A CSV upload run (multipart), then its rollback (nothing later consumed WIDGET-B).
    upload = m.RunUpload(
        sales_file=gen.types.File(payload=io.BytesIO(SALES_CSV), file_name="sales.csv", mime_type="text/csv"),
        lots_file=gen.types.File(payload=io.BytesIO(LOTS_CSV), file_name="lots.csv", mime_type="text/csv"),
    )
    csv_run = _ok(runs_create.sync_detailed(client=owner, body=upload), 202)
    assert _wait(gen, owner, csv_run.job_id).status == m.JobStatus.COMPLETED
    assert Decimal(_ok(runs_get.sync_detailed(csv_run.run_id, client=owner), 200).total_cogs) == Decimal("9.9999")
    rollback = _ok(gen.op("runs", "runs_rollback").sync_detailed(csv_run.run_id, client=owner), 202)
    assert (rollback.run_id, rollback.cascade) == (csv_run.run_id, False)
    assert _wait(gen, owner, rollback.job_id).status == m.JobStatus.COMPLETED
    rolled_back = _ok(runs_get.sync_detailed(csv_run.run_id, client=owner), 200)
    assert rolled_back.status == m.RunStatus.ROLLED_BACK and rolled_back.rolled_back_by

    # Journal entries: one balanced pair per sale date, to the cent; the rolled-back run's is the reversal.
    journal_entry = gen.op("runs", "runs_journal_entry")
    fmt = m.RunsJournalEntryFormat
    # The journal's 200 has one content type per format; the generated client hands back the text.
    entries = json.loads(_ok(journal_entry.sync_detailed(json_run.run_id, client=owner, format_=fmt.JSON), 200))
    assert [
        (e["date"], [(line["account_code"], line["debit"], line["credit"]) for line in e["lines"]]) for e in entries
    ] == [
        ("2024-07-10", [("5000", "1270.00", "0.00"), ("1400", "0.00", "1270.00")]),
        ("2024-07-11", [("5000", "55.00", "0.00"), ("1400", "0.00", "55.00")]),
    ]
    reversal = json.loads(_ok(journal_entry.sync_detailed(csv_run.run_id, client=owner), 200))
    assert [(line["account_code"], line["debit"]) for line in reversal[0]["lines"]] == [
        ("1400", "10.00"),
        ("5000", "0.00"),
    ]
    iif = _ok(journal_entry.sync_detailed(json_run.run_id, client=owner, format_=fmt.IIF), 200)
    assert iif.startswith("!TRNS")

    # A report and an export of it.
    valuation = _ok(gen.op("reports", "reports_valuation").sync_detailed(client=owner, sku="WIDGET-C"), 200)
    assert [(r.sku, r.quantity, r.value) for r in valuation.items] == [("WIDGET-C", "12.5000", "30.00000000")]
    export_body = m.ExportCreate(report=m.ExportCreateReport.VALUATION, params=m.ExportCreateParams(sku="WIDGET-C"))
    export = _ok(gen.op("exports", "exports_create").sync_detailed(client=owner, body=export_body), 202)
    assert _wait(gen, owner, export.job_id).status == m.JobStatus.COMPLETED
    stored = _ok(gen.op("exports", "exports_get").sync_detailed(export.export_id, client=owner), 200)
    assert stored.status == m.ExportStatus.COMPLETED and stored.row_count == 1
    csv = _ok(gen.op("exports", "exports_download").sync_detailed(export.export_id, client=owner), 200)
    assert "WIDGET-C" in csv and csv.endswith("\n")

    # The job list filters by the enums the schema declares, and errors arrive as the envelope.
    jobs = _ok(gen.op("jobs", "jobs_list").sync_detailed(client=owner, kind=m.JobKind.ROLLBACK), 200)
    assert [j.job_id for j in jobs.items] == [rollback.job_id]
    missing = _ok(runs_get.sync_detailed("run_missing", client=owner), 404)
    assert (missing.error.code, missing.error.request_id is not None) == (m.ErrorCode.NOT_FOUND, True)
