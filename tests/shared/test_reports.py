"""Reports against an independent recomputation from raw ledger rows, on a ledger with every event shape:
receipts with bins and vendors, run lots without either, issues, shrink, a count's gain lot, reversed
receipts, issues and adjustments, and a future-dated receipt."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import text

from shared import db
from shared.base import new_id
from shared.errors import ValidationFailed
from shared.inventory.models import Category, Item
from shared.reports import service as reports
from shared.reports.schemas import REPORTS, parse_params
from tests import ledger_oracle as oracle
from tests.support import (
    create_tenant_direct,
    ledger_move,
    ledger_receive,
    ledger_reverse,
    query,
    seed_locations,
)


def loc(name: str, tenant_id: str) -> str:
    """Hub and bin ids are global: each test tenant gets its own, named `<name>-<tenant>`."""
    return f"{name}-{tenant_id}"


def resolve(params: dict[str, str], tenant_id: str) -> dict[str, str]:
    return {k: loc(v, tenant_id) if k == "hub_id" and v != "nowhere" else v for k, v in params.items()}


def build_ledger(tenant_id: str) -> None:
    with db.unit_of_work(tenant_id) as s:
        seed_locations(
            s,
            tenant_id,
            {
                loc("H1", tenant_id): [loc("B1", tenant_id), loc("B2", tenant_id)],
                loc("H2", tenant_id): [loc("B3", tenant_id)],
            },
        )
        category = Category(id=new_id("cat"), tenant_id=tenant_id, name="general")
        s.add(category)
        s.add_all(
            Item(id=new_id("item"), tenant_id=tenant_id, sku=sku, name=name, category_id=category.id)
            for sku, name in (("A", "Alpha"), ("B", "Beta"), ("C", "Gamma, the third"))
        )
        s.flush()
        t = tenant_id
        ledger_receive(
            s,
            t,
            lot_id="L1",
            sku="A",
            quantity="100",
            unit_cost="2.5",
            at="2024-01-05T09:00:00Z",
            bin_id=loc("B1", t),
            vendor_id="V1",
        )
        ledger_receive(
            s,
            t,
            lot_id="L2",
            sku="A",
            quantity="50",
            unit_cost="3.1234",
            at="2024-02-01T00:00:00Z",
            bin_id=loc("B3", t),
            vendor_id="V2",
        )
        ledger_receive(
            s,
            t,
            lot_id="L3",
            sku="B",
            quantity="10.5",
            unit_cost="7",
            at="2024-01-10T12:00:00Z",
            bin_id=loc("B2", t),
            vendor_id="V1",
        )
        ledger_receive(
            s, t, lot_id="L4", sku="C", quantity="20", unit_cost="1.1111", at="2024-01-15T00:00:00Z", run_id="run_r1"
        )
        ledger_move(
            s, t, "ISSUE", lot_id="L1", quantity="-30", at="2024-01-20T10:00:00Z", run_id="run_r1", reference="S1"
        )
        ledger_move(s, t, "ISSUE", lot_id="L1", quantity="-70", at="2024-02-10T00:00:00Z", reference="S2")
        ledger_move(s, t, "ISSUE", lot_id="L2", quantity="-5", at="2024-02-15T08:30:00Z", reference="S3")
        ledger_move(s, t, "ADJUSTMENT", lot_id="L2", quantity="-2", at="2024-03-01T00:00:00Z", bin_id=loc("B3", t))
        ledger_receive(
            s,
            t,
            lot_id="ADJ-1",
            sku="B",
            quantity="1.5",
            unit_cost="7",
            at="2024-03-02T00:00:00Z",
            bin_id=loc("B2", t),
            kind="ADJUSTMENT",
        )
        receipt = ledger_receive(s, t, lot_id="L5", sku="C", quantity="5", unit_cost="2", at="2024-02-20T00:00:00Z")
        ledger_reverse(s, t, receipt)
        issue = ledger_move(s, t, "ISSUE", lot_id="L3", quantity="-1", at="2024-03-05T00:00:00Z", reference="S4")
        ledger_reverse(s, t, issue)
        shrink = ledger_move(
            s, t, "ADJUSTMENT", lot_id="L3", quantity="-0.25", at="2024-03-06T00:00:00Z", bin_id=loc("B2", t)
        )
        ledger_reverse(s, t, shrink)
        ledger_move(s, t, "ADJUSTMENT", lot_id="L4", quantity="-0.5", at="2024-03-10T00:00:00Z")
        ledger_receive(
            s,
            t,
            lot_id="L6",
            sku="A",
            quantity="1",
            unit_cost="9.9999",
            at="2030-01-01T00:00:00Z",
            bin_id=loc("B1", t),
            vendor_id="V2",
        )


@pytest.fixture(scope="module")
def tenant(service_urls):
    tenant_id = create_tenant_direct("rep")
    build_ledger(tenant_id)
    return tenant_id


@pytest.fixture(scope="module")
def ledger(tenant):
    return oracle.load(tenant)


POINT_PARAMS = [
    {},
    {"as_of": "2023-12-31"},
    {"as_of": "2024-01-31"},
    {"as_of": "2024-02-10"},
    {"as_of": "2024-02-09T23:59:59.999999Z"},
    {"as_of": "2024-02-10T00:00:00+00:00"},
    {"as_of": "2024-02-20"},
    {"sku": "A"},
    {"sku": "A", "as_of": "2024-02-12"},
    {"hub_id": "H1"},
    {"hub_id": "H2", "as_of": "2024-02-12"},
    {"hub_id": "nowhere"},
]
WINDOW_PARAMS = [
    {},
    {"from": "2024-02-01"},
    {"to": "2024-02-01"},
    {"from": "2024-01-15", "to": "2024-03-02"},
    {"from": "2024-02-20T00:00:00Z", "to": "2024-02-20T00:00:00.000001Z"},
    {"from": "2024-03-05", "to": "2024-03-06"},
    {"sku": "C"},
    {"sku": "B", "from": "2024-03-01"},
    {"hub_id": "H1", "from": "2024-01-01", "to": "2024-12-31"},
    {"hub_id": "H2"},
]
CASES = [
    (report, params)
    for report in REPORTS
    for params in (POINT_PARAMS if report in ("stock-on-hand", "valuation") else WINDOW_PARAMS)
]


def _report(tenant_id, report, params):
    with db.unit_of_work(tenant_id) as session:
        return reports.run_report(session, tenant_id, report, parse_params(report, params))


@pytest.mark.parametrize(("report", "params"), CASES, ids=[f"{r}-{p}" for r, p in CASES])
def test_report_equals_an_independent_recomputation_from_ledger_rows(tenant, ledger, report, params):
    params = resolve(params, tenant)
    result = _report(tenant, report, params)
    actual = oracle.as_values(result.rows)
    assert actual == oracle.expected(ledger, report, params)


def test_the_ledger_under_test_has_every_event_type(ledger):
    assert {e["event_type"] for e in ledger.events} == {"RECEIPT", "ISSUE", "ADJUSTMENT", "REVERSAL"}


def test_valuation_total_is_the_sum_of_every_ledger_amount(tenant, ledger):
    result = _report(tenant, "valuation", {})
    total = Decimal(result.total_value)
    assert total == sum((e["amount"] for e in ledger.events), Decimal(0))
    assert total == sum(Decimal(r["value"]) for r in result.rows)
    on_hand = _report(tenant, "stock-on-hand", {})
    assert total == sum(Decimal(r["value"]) for r in on_hand.rows)
    assert len(result.total_value.partition(".")[2]) == 8


def test_valuation_of_nothing_is_zero_with_fixed_places(tenant):
    result = _report(tenant, "valuation", {"as_of": "2000-01-01"})
    assert result.rows == []
    assert result.total_value == "0.00000000"


@pytest.mark.parametrize("params", WINDOW_PARAMS)
def test_movement_rows_satisfy_opening_plus_movements_equals_closing(tenant, params):
    params = resolve(params, tenant)
    for row in oracle.as_values(_report(tenant, "inventory-movement", params).rows):
        moved = row["received"] + row["issued"] + row["adjusted"] + row["reversed"]
        assert row["opening"] + moved == row["closing"], row


def test_movement_closing_agrees_with_stock_on_hand_at_the_same_point(tenant):
    movement = _report(tenant, "inventory-movement", {"to": "2024-02-11"}).rows
    valuation = _report(tenant, "valuation", {"as_of": "2024-02-10"}).rows
    closing = {r["sku"]: (r["closing"], r["closing_value"]) for r in movement if Decimal(r["closing"])}
    assert closing == {r["sku"]: (r["quantity"], r["value"]) for r in valuation}


def test_a_reversed_receipt_and_a_reversed_issue_leave_no_trace_in_stock(tenant):
    rows = {r["lot_id"]: r for r in _report(tenant, "stock-on-hand", {}).rows}
    assert "L5" not in rows
    assert rows["L3"]["quantity"] == "10.5000"
    receiving = _report(tenant, "receiving-summary", {"sku": "C"}).rows
    assert [(r["vendor_id"], r["receipts"], r["quantity"]) for r in receiving] == [(None, 1, "20.0000")]


def test_rows_follow_the_documented_order_and_formats(tenant):
    on_hand = _report(tenant, "stock-on-hand", {}).rows
    assert [(r["sku"], r["lot_id"]) for r in on_hand] == sorted((r["sku"], r["lot_id"]) for r in on_hand)
    assert on_hand[0] == {
        "sku": "A",
        "item_name": "Alpha",
        "hub_id": loc("H2", tenant),
        "bin_id": loc("B3", tenant),
        "lot_id": "L2",
        "quantity": "43.0000",
        "unit_cost": "3.1234",
        "value": "134.30620000",
    }
    shrink = _report(tenant, "shrink-summary", {}).rows
    assert [(r["sku"], r["bin_id"]) for r in shrink] == [
        ("A", loc("B3", tenant)),
        ("B", loc("B2", tenant)),
        ("C", None),
    ]
    assert shrink[0]["shrink_quantity"] == "-2.0000"
    assert shrink[0]["net_value"] == "-6.24680000"
    assert shrink[1]["gain_quantity"] == "1.5000"
    assert shrink[1]["shrink_quantity"] == "0.0000"
    receiving = _report(tenant, "receiving-summary", {}).rows
    assert [(r["vendor_id"], r["sku"]) for r in receiving] == [("V1", "A"), ("V1", "B"), ("V2", "A"), (None, "C")]


def test_reports_are_scoped_to_their_tenant(tenant):
    other = create_tenant_direct("rep")
    for report in REPORTS:
        assert _report(other, report, {}).rows == []
    with db.unit_of_work(other) as session:
        assert not reports.has_rows(session, other, "stock-on-hand", parse_params("stock-on-hand", {}))
    with db.unit_of_work(tenant) as session:
        assert reports.has_rows(session, tenant, "stock-on-hand", parse_params("stock-on-hand", {}))
        assert not reports.has_rows(session, tenant, "valuation", parse_params("valuation", {"as_of": "2001-01-01"}))


@pytest.mark.parametrize("report", ["stock-on-hand", "valuation"])
def test_current_stock_and_valuation_read_derived_lots_not_the_ledger(tenant, report):
    """Valuation plans a read of the events of moving-average SKUs (their carried value), behind a one-time
    check that never executes it for a tenant without any: the ledger is still not read."""
    sql, binds = reports.QUERIES[report](tenant, parse_params(report, {}))
    with db.unit_of_work(tenant) as session:
        plan = [r[0] for r in session.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {sql}"), binds)]
    assert any(" on lots" in line for line in plan)
    assert all("never executed" in line for line in plan if " on ledger_events" in line), "\n".join(plan)


@pytest.mark.parametrize(
    ("report", "params", "field"),
    [
        ("stock-on-hand", {"as_of": "yesterday"}, "as_of"),
        ("stock-on-hand", {"as_of": "2024-13-01"}, "as_of"),
        ("stock-on-hand", {"as_of": "9999-12-31"}, "as_of"),
        ("stock-on-hand", {"from": "2024-01-01"}, "from"),
        ("valuation", {"to": "2024-01-01"}, "to"),
        ("inventory-movement", {"as_of": "2024-01-01"}, "as_of"),
        ("inventory-movement", {"from": "2024-02-01", "to": "2024-01-01"}, "from"),
        ("shrink-summary", {"sku": "A\x00"}, "sku"),
        ("receiving-summary", {"sku": ""}, "sku"),
        ("receiving-summary", {"hub_id": "x" * 41}, "hub_id"),
        ("receiving-summary", {"colour": "red"}, "colour"),
        ("valuation", {"as_of": 20240101}, "as_of"),
    ],
)
def test_bad_parameters_are_validation_failures_naming_the_field(report, params, field):
    with pytest.raises(ValidationFailed) as caught:
        parse_params(report, params)
    assert caught.value.reason == "BAD_REQUEST"
    assert [d["field"] for d in caught.value.details] == [field]


def test_parameters_are_stored_in_one_canonical_spelling():
    a = parse_params("valuation", {"as_of": "2024-07-01T12:00:00+02:00", "sku": "A"}).canonical()
    b = parse_params("valuation", {"sku": "A", "as_of": "2024-07-01T10:00:00Z"}).canonical()
    assert a == b == {"as_of": "2024-07-01T10:00:00Z", "sku": "A"}
    assert parse_params("inventory-movement", {"from": "2024-07-01"}).canonical() == {"from": "2024-07-01"}


def test_stored_lots_agree_with_the_ledger(tenant, ledger):
    lots = {
        r.lot_id: r.remaining_quantity for r in query("SELECT lot_id, remaining_quantity FROM lots", tenant_id=tenant)
    }
    sums: dict[str, Decimal] = {}
    for e in ledger.events:
        sums[e["lot_id"]] = sums.get(e["lot_id"], Decimal(0)) + e["quantity"]
    assert lots == sums
