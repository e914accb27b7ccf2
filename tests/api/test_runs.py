"""COGS runs through the API and a real worker: results, validation, dry runs, rollback, journals."""

from __future__ import annotations

import pytest

from tests.support import lot, make_tenant, query, sale, seed_items

SKUS = ["WIDGET-A", "GADGET-B"]


@pytest.fixture(scope="module")
def base(shared_stack):
    return shared_stack


@pytest.fixture
def tenant(base):
    tenant_id, owner = make_tenant(base)
    seed_items(tenant_id, SKUS)
    return tenant_id, owner


def submit(owner, sales, lots=(), dry_run=False, expect="completed"):
    response = owner.post("/runs", json={"sales_data": sales, "lots_data": list(lots), "dry_run": dry_run})
    assert response.status_code == 202, response.text
    job = owner.wait_job(response.json()["job_id"])
    run = owner.get(f"/runs/{response.json()['run_id']}").json()
    assert run["status"] == expect, (run, job)
    return run


def reasons(owner, run):
    items = owner.get(f"/runs/{run['run_id']}/validation-errors", params={"limit": 1000}).json()["items"]
    return [(e["file"], e["row"], e["field"], e["reason"]) for e in items]


def lots_of(tenant_id):
    return dict(query("SELECT lot_id, remaining_quantity FROM lots WHERE tenant_id = :t", {"t": tenant_id}))


def test_multi_lot_consumption_with_freight(tenant):
    _, owner = tenant
    run = submit(
        owner,
        [sale("S1", "WIDGET-A", "2024-07-20", "150")],
        [
            lot("L1", "WIDGET-A", "2024-07-01", "100", "10", "1"),
            lot("L2", "WIDGET-A", "2024-07-02", "100", "12", "0.5"),
        ],
    )
    # 100 x 11.00 + 50 x 12.50
    assert run["total_cogs"] == "1725.00000000"
    slices = owner.get(f"/runs/{run['run_id']}/allocations").json()["items"]
    assert [(s["lot_id"], s["quantity"], s["unit_cost"], s["amount"]) for s in slices] == [
        ("L1", "100.0000", "11.0000", "1100.00000000"),
        ("L2", "50.0000", "12.5000", "625.00000000"),
    ]


def test_lots_received_after_the_sale_are_not_used(tenant):
    _, owner = tenant
    run = submit(
        owner,
        [sale("S1", "WIDGET-A", "2024-07-05", "10")],
        [lot("LATE", "WIDGET-A", "2024-07-06", "100", "10")],
        expect="failed",
    )
    assert run["error"]["code"] == "VALIDATION_FAILED"
    assert reasons(owner, run) == [("sales", 1, "quantity_sold", "INSUFFICIENT_STOCK")]


def test_exact_cents_on_fractional_quantities(tenant):
    _, owner = tenant
    run = submit(
        owner, [sale("S1", "WIDGET-A", "2024-07-05", "0.3333")], [lot("L1", "WIDGET-A", "2024-07-01", "1", "3.3333")]
    )
    assert run["total_cogs"] == "1.11098889"  # 0.3333 x 3.3333, exact; journals round it to 1.11


def test_partially_consumed_lots_carry_across_runs(tenant):
    tenant_id, owner = tenant
    submit(
        owner,
        [sale("S1", "WIDGET-A", "2024-07-05", "60")],
        [lot("L1", "WIDGET-A", "2024-07-01", "100", "2"), lot("L2", "WIDGET-A", "2024-07-02", "100", "3")],
    )
    assert lots_of(tenant_id) == {"L1": 40, "L2": 100}
    run = submit(owner, [sale("S2", "WIDGET-A", "2024-07-06", "50")])
    assert run["total_cogs"] == "110.00000000"  # 40 x 2 + 10 x 3
    assert lots_of(tenant_id) == {"L1": 0, "L2": 90}


def test_every_validation_error_is_reported_together(tenant):
    _, owner = tenant
    submit(owner, [sale("DONE", "WIDGET-A", "2024-07-10", "1")], [lot("L1", "WIDGET-A", "2024-07-01", "100", "1")])
    run = submit(
        owner,
        [
            sale("OK", "WIDGET-A", "2024-07-11", "1"),
            sale("BAD-QTY", "WIDGET-A", "2024-07-11", "abc"),
            sale("NOPE", "NO-SUCH-SKU", "2024-07-11", "1"),
            sale("DONE", "WIDGET-A", "2024-07-12", "1"),
            sale("EARLY", "WIDGET-A", "2024-07-09", "1"),
            sale("HUGE", "GADGET-B", "2024-07-11", "5"),
        ],
        [lot("L1", "WIDGET-A", "2024-07-01", "999", "1")],
        expect="failed",
    )
    assert run["validation_errors_count"] == len(reasons(owner, run))
    assert set(reasons(owner, run)) >= {
        ("sales", 2, "quantity_sold", "BAD_NUMBER"),
        ("sales", 3, "sku", "UNKNOWN_SKU"),
        ("sales", 4, "sale_id", "DUPLICATE_SALE"),
        ("sales", 5, "sale_date", "BACKDATED_SALE"),
        ("sales", 6, "quantity_sold", "INSUFFICIENT_STOCK"),
        ("lots", 1, "lot_id", "LOT_CONFLICT"),
    }


def test_same_lot_again_is_not_received_twice(tenant):
    tenant_id, owner = tenant
    lots = [lot("L1", "WIDGET-A", "2024-07-01", "100", "1")]
    submit(owner, [sale("S1", "WIDGET-A", "2024-07-02", "10")], lots)
    submit(owner, [sale("S2", "WIDGET-A", "2024-07-03", "10")], lots)
    assert lots_of(tenant_id) == {"L1": 80}
    receipts = query(
        "SELECT count(*) FROM ledger_events WHERE tenant_id = :t AND event_type = 'RECEIPT'", {"t": tenant_id}
    )
    assert receipts[0][0] == 1


def test_dry_run_computes_everything_and_writes_no_ledger(tenant):
    tenant_id, owner = tenant
    run = submit(
        owner,
        [sale("S1", "WIDGET-A", "2024-07-20", "5")],
        [lot("L1", "WIDGET-A", "2024-07-01", "10", "4")],
        dry_run=True,
        expect="validated",
    )
    assert run["total_cogs"] == "20.00000000"
    assert owner.get(f"/runs/{run['run_id']}/allocations").json()["items"][0]["amount"] == "20.00000000"
    assert query("SELECT count(*) FROM ledger_events WHERE tenant_id = :t", {"t": tenant_id})[0][0] == 0
    assert lots_of(tenant_id) == {}
    # a dry run does not make its sales "costed"
    submit(owner, [sale("S1", "WIDGET-A", "2024-07-20", "5")], [lot("L1", "WIDGET-A", "2024-07-01", "10", "4")])


def test_csv_upload_with_bom_and_crlf(tenant):
    _, owner = tenant
    sales_csv = "\ufeffsale_id,sku,sale_date,quantity_sold\r\nS1,WIDGET-A,2024-07-02,3\r\n".encode()
    lots_csv = (
        b"lot_id,sku,received_date,original_quantity,remaining_quantity,unit_price,freight_cost_per_unit\r\n"
        b'"L1","WIDGET-A",2024-07-01T00:00:00Z,10,10,"1.50",0.25\r\n'
    )
    response = owner.post("/runs", files={"sales_file": ("s.csv", sales_csv), "lots_file": ("l.csv", lots_csv)})
    assert response.status_code == 202, response.text
    owner.wait_job(response.json()["job_id"])
    run = owner.get(f"/runs/{response.json()['run_id']}").json()
    assert (run["status"], run["total_cogs"]) == ("completed", "5.25000000")


def test_templates(base):
    _, owner = make_tenant(base)
    assert owner.get("/files/templates/sales").text == "sale_id,sku,sale_date,quantity_sold\n"
    assert owner.get("/files/templates/lots").text.startswith("lot_id,sku,received_date,original_quantity")


def test_list_runs_filters_and_paginates(tenant):
    _, owner = tenant
    submit(owner, [sale("S1", "WIDGET-A", "2024-07-02", "1")], [lot("L1", "WIDGET-A", "2024-07-01", "10", "1")])
    submit(owner, [sale("S2", "WIDGET-A", "2024-07-01", "1")], expect="failed")
    submit(owner, [sale("S3", "WIDGET-A", "2024-07-03", "1")])
    page = owner.get("/runs", params={"limit": 2}).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = owner.get("/runs", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    failed = owner.get("/runs", params={"status": "failed"}).json()["items"]
    assert [r["status"] for r in failed] == ["failed"]


# --- rollback -------------------------------------------------------------------------------------------


def rollback(owner, run_id, cascade=False, expect=202):
    response = owner.post(f"/runs/{run_id}/rollback", params={"cascade": str(cascade).lower()})
    assert response.status_code == expect, response.text
    if expect == 202:
        job = owner.wait_job(response.json()["job_id"])
        assert job["status"] == "completed", job["error"]
    return response


def ledger_totals(tenant_id):
    return query(
        "SELECT sku, sum(quantity), sum(amount) FROM ledger_events WHERE tenant_id = :t GROUP BY sku ORDER BY sku",
        {"t": tenant_id},
    )


def test_rollback_restores_lots_and_stock_then_rerun_with_corrected_data(tenant):
    tenant_id, owner = tenant
    base_run = submit(
        owner, [sale("S0", "WIDGET-A", "2024-07-02", "10")], [lot("L1", "WIDGET-A", "2024-07-01", "100", "2")]
    )
    before = (lots_of(tenant_id), ledger_totals(tenant_id))
    wrong = submit(
        owner, [sale("S1", "WIDGET-A", "2024-07-05", "70")], [lot("L2", "WIDGET-A", "2024-07-03", "50", "9")]
    )
    rollback(owner, wrong["run_id"])
    assert owner.get(f"/runs/{wrong['run_id']}").json()["status"] == "rolled_back"
    assert lots_of(tenant_id) == {**before[0], "L2": 0}
    assert ledger_totals(tenant_id) == before[1]
    # the runbook's workflow: re-run with corrected data, same sale id and the same lot id received anew
    fixed = submit(owner, [sale("S1", "WIDGET-A", "2024-07-05", "7")], [lot("L2", "WIDGET-A", "2024-07-03", "50", "8")])
    assert fixed["total_cogs"] == "14.00000000"
    assert lots_of(tenant_id) == {"L1": 83, "L2": 50}
    assert base_run["status"] == "completed"


def test_rollback_blocked_by_a_later_run_then_cascade(tenant):
    tenant_id, owner = tenant
    first = submit(
        owner, [sale("S1", "WIDGET-A", "2024-07-02", "10")], [lot("L1", "WIDGET-A", "2024-07-01", "100", "2")]
    )
    second = submit(owner, [sale("S2", "WIDGET-A", "2024-07-03", "10")])
    other_sku = submit(
        owner, [sale("S3", "GADGET-B", "2024-07-03", "1")], [lot("G1", "GADGET-B", "2024-07-01", "5", "7")]
    )
    blocked = rollback(owner, first["run_id"], expect=409).json()["error"]
    assert (blocked["code"], blocked["reason"]) == ("CONFLICT", "ROLLBACK_BLOCKED")
    assert [d["run_id"] for d in blocked["details"]] == [second["run_id"]]

    rollback(owner, first["run_id"], cascade=True)
    assert owner.get(f"/runs/{first['run_id']}").json()["status"] == "rolled_back"
    assert owner.get(f"/runs/{second['run_id']}").json()["status"] == "rolled_back"
    assert owner.get(f"/runs/{other_sku['run_id']}").json()["status"] == "completed"
    assert lots_of(tenant_id) == {"L1": 0, "G1": 4}
    widget = next(row for row in ledger_totals(tenant_id) if row[0] == "WIDGET-A")
    assert (widget[1], widget[2]) == (0, 0)
    # newest first: the second run's reversals precede the first run's
    order = query(
        "SELECT DISTINCT ON (run_id) run_id FROM (SELECT run_id, seq FROM ledger_events "
        "WHERE tenant_id = :t AND event_type = 'REVERSAL' ORDER BY seq) e",
        {"t": tenant_id},
    )
    assert len(order) == 2


def test_rollback_refusals(tenant):
    _, owner = tenant
    run = submit(owner, [sale("S1", "WIDGET-A", "2024-07-02", "1")], [lot("L1", "WIDGET-A", "2024-07-01", "10", "2")])
    rollback(owner, run["run_id"])
    again = rollback(owner, run["run_id"], expect=409).json()["error"]
    assert again["code"] == "CONFLICT"
    failed = submit(owner, [sale("S9", "NO-SKU", "2024-07-02", "1")], expect="failed")
    assert rollback(owner, failed["run_id"], expect=422).json()["error"]["reason"] == "NOT_ROLLBACKABLE"
    assert rollback(owner, "run_doesnotexist", expect=404).json()["error"]["code"] == "NOT_FOUND"


def test_rolled_back_sale_can_be_costed_again(tenant):
    _, owner = tenant
    run = submit(owner, [sale("S1", "WIDGET-A", "2024-07-02", "1")], [lot("L1", "WIDGET-A", "2024-07-01", "10", "2")])
    submit(owner, [sale("S1", "WIDGET-A", "2024-07-02", "1")], expect="failed")  # DUPLICATE_SALE while live
    rollback(owner, run["run_id"])
    submit(owner, [sale("S1", "WIDGET-A", "2024-07-02", "1")], [lot("L1", "WIDGET-A", "2024-07-01", "10", "2")])


# --- journal entries ------------------------------------------------------------------------------------


def test_journal_entries_in_every_format_and_the_reversal(tenant):
    import csv
    import io
    import json
    from decimal import Decimal

    _, owner = tenant
    run = submit(
        owner,
        [
            sale("S1", "WIDGET-A", "2024-07-02T10:00:00Z", "0.3333"),
            sale("S2", "WIDGET-A", "2024-07-02T11:00:00Z", "0.3333"),
            sale("S3", "WIDGET-A", "2024-07-03", "1"),
        ],
        [lot("L1", "WIDGET-A", "2024-07-01", "10", "3.3333")],
    )

    entries = json.loads(owner.get(f"/runs/{run['run_id']}/journal-entry", params={"format": "json"}).content)
    # 2 x 0.3333 x 3.3333 = 2.22197778 -> 2.22 on 07-02; 3.3333 -> 3.33 on 07-03
    assert [(e["date"], e["lines"][0]["debit"], e["lines"][1]["credit"]) for e in entries] == [
        ("2024-07-02", "2.22", "2.22"),
        ("2024-07-03", "3.33", "3.33"),
    ]
    assert entries[0]["lines"][0]["account_code"] == "5000"

    rows = list(
        csv.DictReader(io.StringIO(owner.get(f"/runs/{run['run_id']}/journal-entry", params={"format": "csv"}).text))
    )
    assert sum(Decimal(r["debit"]) for r in rows) == sum(Decimal(r["credit"]) for r in rows) == Decimal("5.55")

    iif = owner.get(f"/runs/{run['run_id']}/journal-entry", params={"format": "iif"}).text.splitlines()
    assert iif[0].split("\t")[:3] == ["!TRNS", "TRNSID", "TRNSTYPE"]
    assert iif[1].startswith("!SPL") and iif[2].startswith("!ENDTRNS")
    assert "07/02/2024" in iif[3] and "Cost of Goods Sold" in iif[3] and run["run_id"] in iif[3]

    xero = owner.get(f"/runs/{run['run_id']}/journal-entry", params={"format": "xero"}).text.splitlines()
    assert xero[0] == "*Narration,*Date,Description,*AccountCode,*TaxRate,*Amount"
    assert "02/07/2024" in xero[1] and "Tax Exempt" in xero[1]

    by_sale = json.loads(
        owner.get(f"/runs/{run['run_id']}/journal-entry", params={"format": "json", "group_by": "sale"}).content
    )
    assert len(by_sale) == 3

    rollback(owner, run["run_id"])
    reversal = json.loads(owner.get(f"/runs/{run['run_id']}/journal-entry", params={"format": "json"}).content)
    assert reversal[0]["lines"][0]["account_code"] == "1400"  # debit Inventory, credit COGS
    assert reversal[0]["lines"][0]["debit"] == "2.22"
