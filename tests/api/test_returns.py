"""Returns and landed cost through the API and a real worker: the ledger events, lots, reports, journals and
the rollback guard they bring, with `asora ledger verify` passing after each."""

from __future__ import annotations

from typing import Any

import pytest

from shared.ledger import verify
from tests.support import Api, lot, make_tenant, query, receive, sale, seed_items, seed_master_data

SKU = "RET-A"


@pytest.fixture(scope="module")
def base(shared_stack):
    return shared_stack


@pytest.fixture
def tenant(base):
    tenant_id, owner = make_tenant(base, prefix="ret")
    seed_items(tenant_id, [SKU])
    return tenant_id, owner


def run(owner: Api, sales, lots=(), expect="completed") -> dict[str, Any]:
    response = owner.post("/runs", json={"sales_data": sales, "lots_data": list(lots)})
    assert response.status_code == 202, response.text
    owner.wait_job(response.json()["job_id"])
    result: dict[str, Any] = owner.get(f"/runs/{response.json()['run_id']}").json()
    assert result["status"] == expect, result
    return result


def rollback(owner: Api, run_id: str) -> None:
    response = owner.post(f"/runs/{run_id}/rollback")
    assert response.status_code == 202, response.text
    assert owner.wait_job(response.json()["job_id"])["status"] == "completed"


def post(owner: Api, path: str, body: dict[str, Any], expect: str = "completed") -> dict[str, Any]:
    response = owner.post(path, json=body)
    assert response.status_code == 202, response.text
    job = owner.wait_job(response.json()["job_id"])
    assert job["status"] == expect, job
    key = "return_id" if path == "/returns" else "landed_cost_id"
    document: dict[str, Any] = owner.get(f"{path}/{response.json()[key]}").json()
    return document


def refused(owner: Api, path: str, body: dict[str, Any], reason: str) -> dict[str, Any]:
    response = owner.post(path, json=body)
    assert response.status_code == 422, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["reason"] == reason, error
    return error


def sale_return(sale_id: str, quantity: str, at: str) -> dict[str, Any]:
    return {"kind": "sale", "sale_id": sale_id, "quantity": quantity, "returned_at": at}


def purchase_return(lot_id: str, quantity: str, at: str) -> dict[str, Any]:
    return {"kind": "purchase", "lot_id": lot_id, "quantity": quantity, "returned_at": at}


def assert_verified(tenant_id: str) -> None:
    with verify.snapshot(tenant_id) as session:
        result = verify.verify_ledger(session, tenant_id)
    assert result.ok, result.as_dict()


def valuation(owner: Api) -> tuple[list[tuple[str, str]], str]:
    body = owner.get("/reports/valuation").json()
    return [(row["quantity"], row["value"]) for row in body["items"]], body["total_value"]


def journal(owner: Api, path: str) -> list[tuple[str, str, str]]:
    response = owner.get(f"{path}/journal-entry", params={"format": "json"})
    assert response.status_code == 200, response.text
    return [(line["account_code"], line["debit"], line["credit"]) for e in response.json() for line in e["lines"]]


def lots_of(tenant_id: str) -> dict[str, tuple[str, str]]:
    rows = query("SELECT lot_id, remaining_quantity, unit_cost FROM lots WHERE tenant_id = :t", {"t": tenant_id})
    return {lot_id: (format(remaining, "f"), format(cost, "f")) for lot_id, remaining, cost in rows}


def test_a_sale_return_after_a_rollback_of_a_later_run(tenant):
    tenant_id, owner = tenant
    first = run(
        owner,
        [sale("S1", SKU, "2024-07-10", "15")],
        [lot("L1", SKU, "2024-07-01", "10", "10"), lot("L2", SKU, "2024-07-02", "10", "20")],
    )
    assert first["total_cogs"] == "200.00000000"  # L1 10 x 10, L2 5 x 20
    later = run(owner, [sale("S2", SKU, "2024-07-12", "3")])
    rollback(owner, later["run_id"])

    refused(owner, "/returns", sale_return("S2", "1", "2024-07-15T00:00:00Z"), "SALE_ROLLED_BACK")
    returned = post(owner, "/returns", sale_return("S1", "7", "2024-07-15T00:00:00Z"))
    # Latest allocation first: the 5 units issued from L2 at 20, then 2 of the 10 from L1 at 10.
    lines = [(x["source_lot_id"], x["lot_id"], x["quantity"], x["unit_cost"], x["amount"]) for x in returned["lines"]]
    rid = returned["id"]
    assert lines == [
        ("L2", f"RET-{rid}-1", "5.0000", "20.0000", "100.00000000"),
        ("L1", f"RET-{rid}-2", "2.0000", "10.0000", "20.00000000"),
    ]
    assert (returned["run_id"], returned["sku"], returned["amount"]) == (first["run_id"], SKU, "120.00000000")
    assert journal(owner, f"/returns/{rid}") == [("1400", "120.00", "0.00"), ("5000", "0.00", "120.00")]
    assert valuation(owner) == ([("12.0000", "220.00000000")], "220.00000000")  # L2 5 x 20 + the returned 120
    assert_verified(tenant_id)

    # What is left to return is what was sold less what came back; the earlier return's lots are taken first.
    refused(owner, "/returns", sale_return("S1", "8.0001", "2024-07-16T00:00:00Z"), "RETURN_EXCEEDS_SOLD")
    second = post(owner, "/returns", sale_return("S1", "4", "2024-07-16T00:00:00Z"))
    assert [(x["source_lot_id"], x["quantity"]) for x in second["lines"]] == [("L1", "4.0000")]

    blocked = owner.post(f"/runs/{first['run_id']}/rollback")
    assert blocked.status_code == 409, blocked.text
    assert blocked.json()["error"]["reason"] == "ROLLBACK_BLOCKED"
    assert blocked.json()["error"]["details"][0]["run_id"] == first["run_id"]

    # Returned units are stock like any other: FIFO issues them by their return date.
    resale = run(owner, [sale("S3", SKU, "2024-07-20", "16")])
    assert resale["total_cogs"] == "260.00000000"  # L2 5 x 20, then 5 x 20 + 2 x 10 + 4 x 10 returned
    events = owner.get("/ledger", params={"event_type": "RETURN_IN"}).json()["items"]
    assert [(e["lot_id"], e["quantity"], e["reference"]) for e in events][:2] == [
        (f"RET-{rid}-1", "5.0000", "S1"),
        (f"RET-{rid}-2", "2.0000", "S1"),
    ]
    assert_verified(tenant_id)


def test_a_landed_cost_on_a_half_consumed_lot(tenant):
    tenant_id, owner = tenant
    first = run(
        owner,
        [sale("S1", SKU, "2024-07-05", "3"), sale("S2", SKU, "2024-07-06", "2")],
        [lot("L1", SKU, "2024-07-01", "10", "10")],
    )
    body = {"lot_id": "L1", "amount": "10.00", "allocated_at": "2024-07-07T00:00:00Z", "memo": "duty"}
    landed = post(owner, "/landed-costs", body)
    # 10.00 over 5 units on hand and 5 issued: 1.0000 a unit; the on-hand half revalues the lot, the issued half
    # adjusts the COGS of the sales that consumed it, pro rata.
    assert [(x["target"], x["run_id"], x["quantity"], x["unit_cost"], x["amount"]) for x in landed["lines"]] == [
        ("on_hand", None, "5.0000", "1.0000", "5.00000000"),
        ("sales", first["run_id"], "5.0000", "1.0000", "5.00000000"),  # per sale: the run's COST_ADJUSTMENTs
    ]
    assert landed["sku"] == SKU
    assert lots_of(tenant_id)["L1"] == ("5.0000", "11.0000")
    assert valuation(owner) == ([("5.0000", "55.00000000")], "55.00000000")
    before = owner.get("/reports/valuation", params={"as_of": "2024-07-06"}).json()  # the landed cost came later
    assert [(r["quantity"], r["value"], r["average_unit_cost"]) for r in before["items"]] == [
        ("5.0000", "50.00000000", "10.0000")
    ]
    events = owner.get("/ledger", params={"job_id": landed["job_id"]}).json()["items"]
    assert [(e["event_type"], e["quantity"], e["amount"], e["run_id"], e["reference"]) for e in events] == [
        ("LANDED_COST", "0.0000", "10.00000000", None, landed["id"]),
        ("COST_ADJUSTMENT", "0.0000", "-3.00000000", first["run_id"], "S1"),
        ("COST_ADJUSTMENT", "0.0000", "-2.00000000", first["run_id"], "S2"),
    ]
    assert journal(owner, f"/landed-costs/{landed['id']}") == [
        ("1400", "5.00", "0.00"),
        ("5000", "5.00", "0.00"),
        ("2000", "0.00", "10.00"),
    ]
    iif = owner.get(f"/landed-costs/{landed['id']}/journal-entry", params={"format": "iif"})
    assert iif.status_code == 200 and "duty" in iif.text
    assert_verified(tenant_id)

    # Later issues from the lot use the new unit cost.
    assert run(owner, [sale("S3", SKU, "2024-07-08", "5")])["total_cogs"] == "55.00000000"
    blocked = owner.post(f"/runs/{first['run_id']}/rollback")
    assert blocked.status_code == 409 and blocked.json()["error"]["reason"] == "ROLLBACK_BLOCKED"
    # Everything is issued now: a second landed cost all goes to COGS, the remainder on the last sale.
    second = post(owner, "/landed-costs", {"lot_id": "L1", "amount": "1", "allocated_at": "2024-07-09T00:00:00Z"})
    resale_run = owner.get("/runs", params={"limit": 1}).json()["items"][0]["run_id"]
    assert [(x["target"], x["run_id"], x["amount"]) for x in second["lines"]] == [
        ("sales", first["run_id"], "0.50000000"),
        ("sales", resale_run, "0.50000000"),
    ]
    adjusted = owner.get("/ledger", params={"job_id": second["job_id"]}).json()["items"]
    assert [(e["reference"], e["amount"]) for e in adjusted[1:]] == [
        ("S1", "-0.30000000"),
        ("S2", "-0.20000000"),
        ("S3", "-0.50000000"),
    ]
    assert_verified(tenant_id)


def test_a_landed_cost_that_does_not_divide_evenly_sums_exactly(tenant):
    tenant_id, owner = tenant
    run(owner, [sale("S1", SKU, "2024-07-05", "1")], [lot("L1", SKU, "2024-07-01", "4", "1")])
    landed = post(owner, "/landed-costs", {"lot_id": "L1", "amount": "1", "allocated_at": "2024-07-06T00:00:00Z"})
    # 1 / 4 units = 0.2500 exactly; 1 / 3 on hand would not be: take a lot with 3 on hand and none issued.
    assert [x["amount"] for x in landed["lines"]] == ["0.75000000", "0.25000000"]
    # Received after S1 was costed (an earlier date would be a backdated receipt, refused by default).
    run(owner, [], [lot("L2", SKU, "2024-07-06", "3", "1")])
    odd = post(owner, "/landed-costs", {"lot_id": "L2", "amount": "1", "allocated_at": "2024-07-07T00:00:00Z"})
    assert [(x["target"], x["unit_cost"], x["amount"]) for x in odd["lines"]] == [
        ("on_hand", "0.3333", "0.99990000"),
        ("rounding", "0.3333", "0.00010000"),
    ]
    assert lots_of(tenant_id)["L2"] == ("3.0000", "1.3333")
    assert journal(owner, f"/landed-costs/{odd['id']}") == [
        ("1400", "1.00", "0.00"),
        ("2000", "0.00", "1.00"),
    ]
    assert_verified(tenant_id)


def test_a_purchase_return_larger_than_what_is_left_is_refused_and_writes_nothing(base):
    tenant_id, owner = make_tenant(base, prefix="ret")
    md = seed_master_data(owner, skus=(SKU,))
    receive(owner, md.vendor_id, [{"sku": SKU, "quantity": 10, "unit_cost": 5, "lot_id": "P1"}])
    run(owner, [sale("S1", SKU, "2024-07-05", "6")])
    before = query("SELECT count(*) FROM ledger_events WHERE tenant_id = :t", {"t": tenant_id})[0][0]

    error = refused(owner, "/returns", purchase_return("P1", "4.0001", "2024-07-06T00:00:00Z"), "INSUFFICIENT_STOCK")
    assert error["details"][0]["field"] == "quantity"
    assert query("SELECT count(*) FROM ledger_events WHERE tenant_id = :t", {"t": tenant_id})[0][0] == before
    assert query("SELECT count(*) FROM returns WHERE tenant_id = :t", {"t": tenant_id})[0][0] == 0
    assert owner.get("/jobs", params={"kind": "return"}).json()["items"] == []
    assert lots_of(tenant_id)["P1"] == ("4.0000", "5.0000")

    returned = post(owner, "/returns", purchase_return("P1", "4", "2024-07-06T00:00:00Z"))
    assert [(x["lot_id"], x["quantity"], x["amount"]) for x in returned["lines"]] == [("P1", "-4.0000", "-20.00000000")]
    assert lots_of(tenant_id)["P1"] == ("0.0000", "5.0000")
    assert journal(owner, f"/returns/{returned['id']}") == [("2000", "20.00", "0.00"), ("1400", "0.00", "20.00")]
    events = owner.get("/ledger", params={"event_type": "RETURN_OUT"}).json()["items"]
    assert [(e["lot_id"], e["quantity"], e["reference"]) for e in events] == [("P1", "-4.0000", md.vendor_id)]
    movement = owner.get("/reports/inventory-movement").json()["items"]
    assert [(m["received"], m["issued"], m["closing"]) for m in movement] == [("6.0000", "-6.0000", "0.0000")]
    # Nothing on hand and nothing issued is left of P1's cost base but the sale: a landed cost goes to it.
    refused(owner, "/returns", purchase_return("P1", "1", "2024-07-07T00:00:00Z"), "INSUFFICIENT_STOCK")
    assert_verified(tenant_id)


def test_refusals_name_the_field_and_write_nothing(tenant):
    tenant_id, owner = tenant
    run(owner, [sale("S1", SKU, "2024-07-05", "2")], [lot("L1", SKU, "2024-07-01", "2", "1")])
    at = "2024-07-06T00:00:00Z"
    for body in (
        {"kind": "sale", "quantity": 1, "returned_at": at},
        {"kind": "purchase", "sale_id": "S1", "quantity": 1, "returned_at": at},
        {"kind": "sale", "sale_id": "S1", "quantity": 0, "returned_at": at},
        {"kind": "sale", "sale_id": "S1", "quantity": "1.00001", "returned_at": at},
        {"kind": "sale", "sale_id": "S1", "quantity": 1, "returned_at": "2024-07-06T00:00:00"},
        {"kind": "gift", "sale_id": "S1", "quantity": 1, "returned_at": at},
    ):
        response = owner.post("/returns", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["code"] == "VALIDATION_FAILED"
    refused(owner, "/returns", sale_return("NOPE", "1", at), "MISSING_PARENT")
    refused(owner, "/returns", sale_return("S1", "1", "2024-07-04T00:00:00Z"), "RETURN_BEFORE_SALE")
    refused(owner, "/returns", purchase_return("NOPE", "1", at), "MISSING_PARENT")
    refused(owner, "/returns", purchase_return("L1", "1", at), "INSUFFICIENT_STOCK")  # all of L1 was sold
    for body in (
        {"lot_id": "L1", "amount": 0, "allocated_at": at},
        {"lot_id": "L1", "amount": -1, "allocated_at": at},
        {"lot_id": "L1", "amount": "1.00001", "allocated_at": at},
        {"lot_id": "L1", "amount": 1, "allocated_at": at, "memo": "x" * 501},
    ):
        response = owner.post("/landed-costs", json=body)
        assert response.status_code == 422, (body, response.text)
    refused(owner, "/landed-costs", {"lot_id": "NOPE", "amount": 1, "allocated_at": at}, "MISSING_PARENT")
    refused(
        owner, "/landed-costs", {"lot_id": "L1", "amount": 1, "allocated_at": "2024-06-30T00:00:00Z"},
        "ALLOCATED_BEFORE_RECEIPT",
    )  # fmt: skip
    post(owner, "/returns", sale_return("S1", "2", at))
    refused(owner, "/landed-costs", {"lot_id": "L1", "amount": 1, "allocated_at": at}, "NOTHING_TO_ALLOCATE")
    assert query("SELECT count(*) FROM landed_costs WHERE tenant_id = :t", {"t": tenant_id})[0][0] == 0
    missing = owner.get("/returns/ret_missing")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
    assert_verified(tenant_id)


def test_returns_and_landed_costs_queue_their_integration_events(tenant):
    tenant_id, owner = tenant
    hook = owner.post(
        "/integrations",
        json={"name": "erp", "url": "http://127.0.0.1:9/hook", "events": ["return.posted", "landed_cost.posted"]},
    )
    assert hook.status_code == 201, hook.text
    run(owner, [sale("S1", SKU, "2024-07-05", "2")], [lot("L1", SKU, "2024-07-01", "5", "1")])
    returned = post(owner, "/returns", sale_return("S1", "1", "2024-07-06T00:00:00Z"))
    landed = post(owner, "/landed-costs", {"lot_id": "L1", "amount": "0.5", "allocated_at": "2024-07-06T00:00:00Z"})
    outbox = owner.get(f"/integrations/{hook.json()['id']}/outbox").json()["items"]
    assert [item["type"] for item in outbox] == ["return.posted", "landed_cost.posted"]
    posted_return, posted_cost = (item["payload"]["data"] for item in outbox)
    assert (posted_return["return_id"], posted_return["sale_id"], posted_return["amount"]) == (
        returned["id"],
        "S1",
        "1.00000000",
    )
    assert (posted_cost["landed_cost_id"], posted_cost["amount"], posted_cost["on_hand_amount"]) == (
        landed["id"],
        "0.50000000",
        "0.37500000",  # 0.5 over 3 on hand and 1 issued (S1 less its return): 0.1250
    )
    assert_verified(tenant_id)


def test_a_run_whose_lots_were_sent_back_or_revalued_cannot_be_rolled_back(tenant):
    tenant_id, owner = tenant
    sent = run(owner, [], [lot("LA", SKU, "2024-07-01", "5", "2")])
    revalued = run(owner, [], [lot("LB", SKU, "2024-07-02", "5", "2")])
    untouched = run(owner, [], [lot("LC", SKU, "2024-07-03", "5", "2")])
    post(owner, "/returns", purchase_return("LA", "1", "2024-07-04T00:00:00Z"))
    post(owner, "/landed-costs", {"lot_id": "LB", "amount": "1", "allocated_at": "2024-07-04T00:00:00Z"})
    for blocked, why in (
        (sent, "units of a lot it received went back to the vendor"),
        (revalued, "a landed cost revalued a lot it received"),
    ):
        response = owner.post(f"/runs/{blocked['run_id']}/rollback")
        assert response.status_code == 409, response.text
        assert response.json()["error"]["details"] == [{"run_id": blocked["run_id"], "message": why}]
    rollback(owner, untouched["run_id"])
    assert lots_of(tenant_id)["LB"] == ("5.0000", "2.2000")
    assert_verified(tenant_id)
