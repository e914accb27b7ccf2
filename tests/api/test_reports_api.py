"""Reports over HTTP on a ledger written by real COGS runs (receipts and issues), a rollback through the API
(reversals) and factory receipts and count adjustments with bins and vendors; each answer is checked against
an independent recomputation from raw ledger rows."""

from __future__ import annotations

import pytest

from shared import db
from shared.reports.schemas import REPORTS
from tests import ledger_oracle as oracle
from tests.support import (
    key_for,
    ledger_move,
    ledger_receive,
    lot,
    make_tenant,
    operator,
    sale,
    seed_items,
    seed_locations,
    seed_master_data,
)

SKUS = ["WIDGET-A", "WIDGET-B"]


@pytest.fixture(scope="module")
def base(shared_stack):
    return shared_stack


def run(owner, sales, lots):
    accepted = owner.post("/runs", json={"mode": "fifo", "sales_data": sales, "lots_data": lots})
    assert accepted.status_code == 202, accepted.text
    job = owner.wait_job(accepted.json()["job_id"])
    assert job["status"] == "completed", job
    return accepted.json()["run_id"]


@pytest.fixture(scope="module")
def stocked(base):
    tenant_id, owner = make_tenant(base, prefix="rpt")
    seed_items(tenant_id, SKUS)
    run(
        owner,
        [sale("S1", "WIDGET-A", "2024-07-20T10:00:00Z", "100"), sale("S2", "WIDGET-B", "2024-07-21T00:00:00Z", "2.5")],
        [
            lot("LOT-A1", "WIDGET-A", "2024-07-01T00:00:00Z", "80", "10.00", "1.00"),
            lot("LOT-A2", "WIDGET-A", "2024-07-05T00:00:00Z", "500", "10.50", "0.25"),
            lot("LOT-B1", "WIDGET-B", "2024-07-02T00:00:00Z", "10", "3.3333"),
        ],
    )
    rolled = run(owner, [sale("S3", "WIDGET-A", "2024-07-25T00:00:00Z", "30")], [])
    rollback = owner.post(f"/runs/{rolled}/rollback")
    assert rollback.status_code == 202, rollback.text
    assert owner.wait_job(rollback.json()["job_id"])["status"] == "completed"
    hub, bin_id = f"H-{tenant_id}", f"B-{tenant_id}"
    with db.unit_of_work(tenant_id) as s:
        seed_locations(s, tenant_id, {hub: [bin_id]})
        ledger_receive(
            s,
            tenant_id,
            lot_id="RCV-1",
            sku="WIDGET-B",
            quantity="40",
            unit_cost="3.5",
            at="2024-08-01T00:00:00Z",
            bin_id=bin_id,
            vendor_id="vendor-1",
        )
        ledger_move(
            s, tenant_id, "ADJUSTMENT", lot_id="RCV-1", quantity="-1.25", at="2024-08-15T00:00:00Z", bin_id=bin_id
        )
    return tenant_id, owner, hub


def params_for(report, hub):
    if report in ("stock-on-hand", "valuation"):
        return [{}, {"as_of": "2024-07-20"}, {"as_of": "2024-07-20T10:00:00Z"}, {"sku": "WIDGET-B"}, {"hub_id": hub}]
    return [
        {},
        {"from": "2024-07-01", "to": "2024-08-01"},
        {"from": "2024-07-21"},
        {"to": "2024-07-21T00:00:00Z", "sku": "WIDGET-A"},
        {"hub_id": hub},
    ]


@pytest.mark.parametrize("report", REPORTS)
def test_every_report_over_http_equals_the_recomputation_from_ledger_rows(stocked, report):
    tenant_id, owner, hub = stocked
    ledger = oracle.load(tenant_id)
    assert {e["event_type"] for e in ledger.events} == {"RECEIPT", "ISSUE", "ADJUSTMENT", "REVERSAL"}
    for params in params_for(report, hub):
        response = owner.get(f"/reports/{report}", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert oracle.as_values(body["items"]) == oracle.expected(ledger, report, params), params
        if report == "valuation":
            assert set(body) == {"items", "total_value"}
            assert body["total_value"] == format(oracle.valuation(ledger, params)[1], ".8f")
        else:
            assert set(body) == {"items"}


def test_a_rolled_back_run_nets_to_zero_and_shows_as_reversed(stocked):
    _, owner, _ = stocked
    rows = {r["sku"]: r for r in owner.get("/reports/inventory-movement").json()["items"]}
    a = rows["WIDGET-A"]
    assert (a["received"], a["issued"], a["reversed"], a["closing"]) == ("580.0000", "-130.0000", "30.0000", "480.0000")
    assert a["closing_value"] == "5160.00000000"  # 480 x 10.75 left in LOT-A2
    on_hand = {r["lot_id"]: r for r in owner.get("/reports/stock-on-hand", params={"sku": "WIDGET-A"}).json()["items"]}
    assert set(on_hand) == {"LOT-A2"}
    assert on_hand["LOT-A2"]["item_name"] == "WIDGET-A"
    assert on_hand["LOT-A2"]["hub_id"] is None  # lots received by a run have no bin


def test_readers_of_any_role_and_an_operator_naming_the_tenant_may_read(base, stocked):
    tenant_id, owner, _ = stocked
    expected = owner.get("/reports/valuation").json()
    assert key_for(base, tenant_id, "viewer").get("/reports/valuation").json() == expected
    assert operator(base, tenant_id).get("/reports/valuation").json() == expected
    refused = operator(base).get("/reports/valuation")
    assert refused.status_code == 403
    assert refused.json()["error"]["reason"] == "TENANT_REQUIRED"


def test_another_tenant_sees_none_of_it(base, stocked):
    _, stranger = make_tenant(base, prefix="rpt")
    for report in REPORTS:
        assert stranger.get(f"/reports/{report}").json()["items"] == []
    assert stranger.get("/reports/valuation").json()["total_value"] == "0.00000000"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("stock-on-hand", {"as_of": "yesterday"}),
        ("stock-on-hand", {"as_of": "2024-02-30"}),
        ("stock-on-hand", {"as_of": "0001-01-01T00:00:00+05:00"}),
        ("stock-on-hand", {"as_of": "x" * 65}),
        ("valuation", {"from": "2024-01-01"}),
        ("inventory-movement", {"as_of": "2024-01-01"}),
        ("inventory-movement", {"from": "2024-02-01", "to": "2024-01-01"}),
        ("receiving-summary", {"to": "2024-13-01"}),
        ("shrink-summary", {"sku": "A\x00B"}),
        ("shrink-summary", {"hub_id": "h" * 41}),
        ("valuation", {"sku": ""}),
    ],
)
def test_bad_parameters_are_422_in_the_envelope_never_5xx(stocked, path, params):
    _, owner, _ = stocked
    response = owner.get(f"/reports/{path}", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "VALIDATION_FAILED"


def test_an_unknown_report_is_404(stocked):
    _, owner, _ = stocked
    assert owner.get("/reports/profit-and-loss").status_code == 404


def test_receipts_and_counts_through_the_api_reconcile_in_every_report(base):
    tenant_id, owner = make_tenant(base, prefix="rpt")
    md = seed_master_data(owner, skus=("RC-1", "RC-2"))
    receipt = owner.post(
        "/receipts",
        json={
            "vendor_id": md.vendor_id,
            "received_at": "2024-09-01T00:00:00Z",
            "lines": [
                {"sku": "RC-1", "bin_id": md.bin_id, "quantity": "10", "unit_cost": "2.5"},
                {
                    "sku": "RC-2",
                    "bin_id": md.bin_id,
                    "quantity": "4",
                    "unit_cost": "1.25",
                    "freight_cost_per_unit": "0.25",
                },
            ],
        },
    )
    assert receipt.status_code == 202, receipt.text
    assert owner.wait_job(receipt.json()["job_id"])["status"] == "completed"
    count = owner.post(
        "/counts",
        json={
            "bin_id": md.bin_id,
            "counted_at": "2024-09-10T00:00:00Z",
            "lines": [{"sku": "RC-1", "counted_quantity": "8"}, {"sku": "RC-2", "counted_quantity": "5"}],
        },
    )
    assert count.status_code == 202, count.text
    assert owner.wait_job(count.json()["job_id"])["status"] == "completed"

    ledger = oracle.load(tenant_id)
    for report in REPORTS:
        for params in ({}, {"hub_id": md.hub_id}, {"sku": "RC-2"}):
            items = owner.get(f"/reports/{report}", params=params).json()["items"]
            assert oracle.as_values(items) == oracle.expected(ledger, report, params), (report, params)
    shrink = {r["sku"]: r for r in owner.get("/reports/shrink-summary").json()["items"]}
    assert (shrink["RC-1"]["shrink_quantity"], shrink["RC-1"]["bin_id"]) == ("-2.0000", md.bin_id)
    assert (shrink["RC-2"]["gain_quantity"], shrink["RC-2"]["gain_value"]) == ("1.0000", "1.50000000")
    receiving = owner.get("/reports/receiving-summary").json()["items"]
    assert [(r["vendor_id"], r["sku"], r["receipts"], r["value"]) for r in receiving] == [
        (md.vendor_id, "RC-1", 1, "25.00000000"),
        (md.vendor_id, "RC-2", 1, "6.00000000"),
    ]
