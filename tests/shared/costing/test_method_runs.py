"""Runs in every costing method through the API and a worker (the shared stack): their costs, allocations,
journal entry, valuation report and a clean `ledger verify`; the tenant default; a SKU held to its method
(VALUATION_METHOD_MISMATCH); and the audited switch (REVALUATION_REQUIRED while it would revalue stock)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from shared.ledger.verify import snapshot, verify_ledger
from tests.support import Api, lot, make_tenant, query, sale, seed_items


@pytest.fixture(scope="module")
def base(shared_stack: str) -> str:
    return shared_stack


def run(owner: Api, sales: list[dict[str, Any]], lots: list[dict[str, Any]], mode: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"sales_data": sales, "lots_data": lots}
    if mode is not None:
        body["mode"] = mode
    accepted = owner.post("/runs", json=body)
    assert accepted.status_code == 202, accepted.text
    owner.wait_job(accepted.json()["job_id"])
    answer: dict[str, Any] = owner.get(f"/runs/{accepted.json()['run_id']}").json()
    return answer


TWO_LOTS = [lot("L1", "A", "2024-05-01", "10", "10"), lot("L2", "A", "2024-05-02", "10", "20")]


@pytest.mark.parametrize(
    ("mode", "cogs", "left"), [("fifo", "200", "100"), ("lifo", "250", "50"), ("moving_average", "225", "75")]
)
def test_a_run_per_method_costs_journals_values_and_verifies(base: str, mode: str, cogs: str, left: str) -> None:
    tenant_id, owner = make_tenant(base, prefix=f"m-{mode[:4]}")
    seed_items(tenant_id, ["A"])
    done = run(owner, [sale("S1", "A", "2024-05-03", "15")], TWO_LOTS, mode)
    assert done["status"] == "completed", done
    assert done["mode"] == mode
    assert Decimal(done["total_cogs"]) == Decimal(cogs)
    slices = owner.get(f"/runs/{done['run_id']}/allocations").json()["items"]
    assert sum(Decimal(s["amount"]) for s in slices) == Decimal(cogs)
    assert sum(Decimal(s["quantity"]) for s in slices) == 15
    entry = owner.get(f"/runs/{done['run_id']}/journal-entry", params={"format": "json"}).json()
    lines = entry[0]["lines"] if isinstance(entry, list) else entry["lines"]
    assert {Decimal(line["debit"]) for line in lines} == {Decimal(cogs), Decimal(0)}
    assert {Decimal(line["credit"]) for line in lines} == {Decimal(cogs), Decimal(0)}
    valuation = owner.get("/reports/valuation").json()
    assert [(r["sku"], Decimal(r["quantity"]), Decimal(r["value"])) for r in valuation["items"]] == [
        ("A", Decimal(5), Decimal(left))
    ]
    movement = owner.get("/reports/inventory-movement").json()["items"]
    assert [(r["sku"], Decimal(r["closing"]), Decimal(r["closing_value"])) for r in movement] == [
        ("A", Decimal(5), Decimal(left))
    ]
    before = owner.get("/reports/valuation", params={"as_of": "2024-05-02"}).json()["items"]
    assert [(r["sku"], Decimal(r["value"])) for r in before] == [("A", Decimal(300))]
    # The books balance: received 300 = issued + left on hand.
    assert Decimal(cogs) + Decimal(left) == 300
    with snapshot(tenant_id) as session:
        verified = verify_ledger(session, tenant_id)
    assert verified.ok, verified.as_dict()
    assert query("SELECT method FROM sku_valuation_methods WHERE sku = 'A'", tenant_id=tenant_id) == [(mode,)]


def test_the_tenant_default_applies_to_runs_naming_no_method_and_a_sku_cannot_silently_switch(base: str) -> None:
    tenant_id, owner = make_tenant(base, prefix="m-def")
    seed_items(tenant_id, ["A", "B"])
    assert owner.get("/settings/valuation").json() == {"default_method": "fifo"}
    changed = owner.put("/settings/valuation", json={"default_method": "lifo"})
    assert changed.status_code == 200, changed.text
    assert changed.json() == {"default_method": "lifo"}
    first = run(owner, [sale("S1", "A", "2024-05-03", "15")], TWO_LOTS, None)
    assert (first["status"], first["mode"], Decimal(first["total_cogs"])) == ("completed", "lifo", Decimal(250))

    # Refused at intake, before a job is accepted: one error per SKU held to another method, at its first row.
    refused = owner.post(
        "/runs",
        json={
            "mode": "fifo",
            "sales_data": [sale("S2", "B", "2024-05-04", "1"), sale("S3", "A", "2024-05-04", "1")],
            "lots_data": [lot("LB", "B", "2024-05-01", "5", "3")],
        },
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "VALIDATION_FAILED"
    assert refused.json()["error"]["reason"] == "VALUATION_METHOD_MISMATCH"
    errors = refused.json()["error"]["details"]
    assert [(e["row"], e["field"], e["reason"], e["file"]) for e in errors] == [
        (2, "sku", "VALUATION_METHOD_MISMATCH", "sales")
    ]
    assert "'A'" in errors[0]["message"] and "lifo" in errors[0]["message"]
    assert query("SELECT count(*) FROM runs", tenant_id=tenant_id) == [(1,)]
    # A CSV upload is read at intake too (only when the tenant holds a SKU to another method than the run's).
    uploaded = owner.post(
        "/runs",
        data={"mode": "moving_average"},
        files={"sales_file": ("s.csv", b"sale_id,sku,sale_date,quantity_sold\nS4,A,2024-05-05,1\n", "text/csv")},
    )
    assert uploaded.status_code == 422, uploaded.text
    assert uploaded.json()["error"]["details"][0]["row"] == 1
    assert "lifo" in uploaded.json()["error"]["message"]
    # A dry run is a preview: it may cost A by another method.
    preview = owner.post(
        "/runs", json={"mode": "fifo", "dry_run": True, "sales_data": [sale("S3", "A", "2024-05-04", "1")]}
    )
    assert preview.status_code == 202, preview.text
    # Nothing of the refused run was written: B is not costed, LB not received.
    assert query("SELECT count(*) FROM lots WHERE lot_id = 'LB'", tenant_id=tenant_id) == [(0,)]
    assert query("SELECT sku FROM sku_valuation_methods ORDER BY sku", tenant_id=tenant_id) == [("A",)]
    audit = query(
        "SELECT details->>'method', details->>'previous_method' FROM audit_events "
        "WHERE action = 'tenant.valuation_method_changed'",
        tenant_id=tenant_id,
    )
    assert audit == [("lifo", "fifo")]


def test_switching_is_explicit_audited_and_never_revalues_stock_on_hand(base: str) -> None:
    tenant_id, owner = make_tenant(base, prefix="m-sw")
    seed_items(tenant_id, ["A"])
    first = run(owner, [sale("S1", "A", "2024-05-03", "15")], TWO_LOTS, "moving_average")
    assert Decimal(first["total_cogs"]) == 225
    # 5 left: 75 under moving average, 100 at the lot's own cost. Switching now would revalue them.
    refused = owner.put("/valuation-methods/A", json={"method": "fifo"})
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["reason"] == "REVALUATION_REQUIRED"
    assert refused.json()["error"]["details"][0]["carried_value"] == "-25.00000000"
    assert owner.put("/valuation-methods/NOPE", json={"method": "fifo"}).status_code == 404
    # Selling the rest empties the pool (5 x 15 = 75, its remaining value): nothing is carried any more.
    second = run(owner, [sale("S2", "A", "2024-05-04", "5")], [], "moving_average")
    assert Decimal(second["total_cogs"]) == 75
    switched = owner.put("/valuation-methods/A", json={"method": "lifo"})
    assert switched.status_code == 200, switched.text
    assert (switched.json()["method"], switched.json()["previous_method"]) == ("lifo", "moving_average")
    listed = owner.get("/valuation-methods").json()["items"]
    assert [(i["sku"], i["method"]) for i in listed] == [("A", "lifo")]
    third = owner.post(
        "/runs",
        json={
            "sales_data": [sale("S3", "A", "2024-05-06", "3")],
            "lots_data": [lot("L3", "A", "2024-05-05", "2", "7"), lot("L4", "A", "2024-05-05T12:00:00Z", "2", "9")],
        },
    )
    assert third.status_code == 422 and third.json()["error"]["reason"] == "VALUATION_METHOD_MISMATCH"  # default
    fourth = run(
        owner, [sale("S3", "A", "2024-05-06", "3")],
        [lot("L3", "A", "2024-05-05", "2", "7"), lot("L4", "A", "2024-05-05T12:00:00Z", "2", "9")], "lifo",
    )  # fmt: skip
    assert (fourth["status"], Decimal(fourth["total_cogs"])) == ("completed", Decimal(25))  # 2 x 9 + 1 x 7
    # From LIFO back to moving average at once: the pool starts as the lots' own value, nothing revalued.
    assert owner.put("/valuation-methods/A", json={"method": "moving_average"}).status_code == 200
    assert Decimal(owner.get("/reports/valuation").json()["items"][0]["value"]) == 7
    audit = query(
        "SELECT details->>'previous_method', details->>'method' FROM audit_events "
        "WHERE action = 'sku.valuation_method_switched' ORDER BY created_at, id",
        tenant_id=tenant_id,
    )
    assert audit == [("moving_average", "lifo"), ("lifo", "moving_average")]
    with snapshot(tenant_id) as session:
        assert verify_ledger(session, tenant_id).ok
