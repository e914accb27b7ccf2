"""Switching a SKU away from moving average with `revalue` (shared/runs/revaluation.py), through the API and a
worker (the shared stack): refused without the opt-in and nothing written; with it a `revaluation` job posts
the REVALUATION events, switches the SKU, audits it and has a journal entry; the ledger verifies, the
valuation report and a later FIFO run use the lots' own costs. A switch with nothing carried stays 200."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from shared.ledger.verify import snapshot, verify_ledger
from shared.runs import methods
from tests.shared.costing.test_method_runs import TWO_LOTS, run
from tests.support import make_tenant, operator, query, sale, seed_items
from tests.worker.test_receipts import fence_held


@pytest.fixture(scope="module")
def base(shared_stack: str) -> str:
    return shared_stack


def _counts(tenant_id: str) -> tuple[Any, ...]:
    return tuple(
        query(sql, tenant_id=tenant_id)[0][0]
        for sql in (
            "SELECT count(*) FROM ledger_events",
            "SELECT count(*) FROM jobs WHERE kind = 'revaluation'",
            "SELECT method FROM sku_valuation_methods WHERE sku = 'A'",
        )
    )


def _carried(tenant_id: str) -> dict[str, Decimal]:
    with snapshot(tenant_id) as session:
        return methods.carried_values(session, tenant_id, ["A"])


def test_a_switch_with_revalue_posts_the_pool_to_its_lots_own_costs(base: str) -> None:
    """10 @ 10 (L1) and 10 @ 20 (L2) under moving average, 5 sold: average 15, COGS 75, the pool 15 units worth
    225. The engine issues the lots in FIFO order, so L1 keeps 5 (50) and L2 10 (200): the lots' own value is
    250, the carried value -25. The revaluation is +25 over L1 and L2 by quantity on hand (5 and 10 of 15):
    L1 25 x 5/15 = 8.33333333 (truncated), L2 the rest, 16.66666667. Journal: Dr Inventory 25.00, Cr COGS 25.00.
    A FIFO sale of 6 then costs 5 x 10 + 1 x 20 = 70, leaving 9 x 20 = 180."""
    tenant_id, owner = make_tenant(base, prefix="rv-ok")
    seed_items(tenant_id, ["A"])
    first = run(owner, [sale("S1", "A", "2024-05-03", "5")], TWO_LOTS, "moving_average")
    assert (first["status"], Decimal(first["total_cogs"])) == ("completed", Decimal(75))
    assert query("SELECT lot_id, remaining_quantity FROM lots ORDER BY lot_id", tenant_id=tenant_id) == [
        ("L1", Decimal(5)),
        ("L2", Decimal(10)),
    ]
    assert _carried(tenant_id) == {"A": Decimal(-25)}

    # Without the opt-in: refused, the message names it, nothing written.
    before = _counts(tenant_id)
    refused = owner.put("/valuation-methods/A", json={"method": "fifo"})
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["reason"]) == ("CONFLICT", "REVALUATION_REQUIRED")
    assert '"revalue": true' in error["message"]
    assert error["details"] == [{"sku": "A", "method": "moving_average", "carried_value": "-25.00000000"}]
    assert _counts(tenant_id) == before == (3, 0, "moving_average")  # 2 receipts, 1 issue

    # The operator never writes the ledger, not even through a switch.
    as_operator = operator(base, tenant_id).put("/valuation-methods/A", json={"method": "fifo", "revalue": True})
    assert as_operator.status_code == 403, as_operator.text
    assert "runs.write" in as_operator.json()["error"]["message"]
    assert _counts(tenant_id) == before

    hook = owner.post(
        "/integrations", json={"name": "erp", "url": "http://127.0.0.1:9/hook", "events": ["sku.revalued"]}
    )
    assert hook.status_code == 201, hook.text
    accepted = owner.put("/valuation-methods/A", json={"method": "fifo", "revalue": True})
    assert accepted.status_code == 202, accepted.text
    answer = accepted.json()
    assert {k: answer[k] for k in ("kind", "status", "sku", "method", "previous_method", "carried_value")} == {
        "kind": "revaluation",
        "status": "queued",
        "sku": "A",
        "method": "fifo",
        "previous_method": "moving_average",
        "carried_value": "-25.00000000",
    }
    job = owner.wait_job(answer["job_id"])
    assert job["status"] == "completed", job
    (result,) = query("SELECT result FROM jobs WHERE id = :j", {"j": answer["job_id"]}, tenant_id=tenant_id)[0]
    assert {k: result[k] for k in ("revalued", "lots", "method", "previous_method")} == {
        "revalued": "25.00000000",
        "lots": 2,
        "method": "fifo",
        "previous_method": "moving_average",
    }

    events = query(
        "SELECT lot_id, quantity, unit_cost, amount, job_id, run_id FROM ledger_events "
        "WHERE event_type = 'REVALUATION' ORDER BY seq",
        tenant_id=tenant_id,
    )
    assert events == [
        ("L1", Decimal(0), Decimal(0), Decimal("8.33333333"), answer["job_id"], None),
        ("L2", Decimal(0), Decimal(0), Decimal("16.66666667"), answer["job_id"], None),
    ]
    assert _carried(tenant_id) == {}
    outbox = owner.get(f"/integrations/{hook.json()['id']}/outbox").json()["items"]
    assert [(item["type"], item["payload"]["data"]["revalued"]) for item in outbox] == [("sku.revalued", "25.00000000")]
    assert query("SELECT method FROM sku_valuation_methods WHERE sku = 'A'", tenant_id=tenant_id) == [("fifo",)]
    audit = query(
        "SELECT details->>'previous_method', details->>'method', details->>'revalued', job_id FROM audit_events "
        "WHERE action = 'sku.valuation_method_switched'",
        tenant_id=tenant_id,
    )
    assert audit == [("moving_average", "fifo", "25.00000000", answer["job_id"])]

    entry = owner.get(f"/revaluations/{answer['job_id']}/journal-entry", params={"format": "json"})
    assert entry.status_code == 200, entry.text
    lines = entry.json()[0]["lines"]
    assert [(line["account_code"], Decimal(line["debit"]), Decimal(line["credit"])) for line in lines] == [
        ("1400", Decimal(25), Decimal(0)),
        ("5000", Decimal(0), Decimal(25)),
    ]
    iif = owner.get(f"/revaluations/{answer['job_id']}/journal-entry", params={"format": "iif"})
    assert iif.status_code == 200 and "GENERAL JOURNAL" in iif.text
    assert owner.get("/revaluations/job_nope/journal-entry").status_code == 404
    assert owner.get(f"/revaluations/{first['job_id']}/journal-entry").status_code == 404  # a run's job

    with snapshot(tenant_id) as session:
        verified = verify_ledger(session, tenant_id)
    assert verified.ok, verified.as_dict()
    valuation = owner.get("/reports/valuation").json()
    assert [(r["sku"], Decimal(r["quantity"]), Decimal(r["value"])) for r in valuation["items"]] == [
        ("A", Decimal(15), Decimal(250))
    ]
    movement = owner.get("/reports/inventory-movement").json()["items"]
    assert [(r["sku"], Decimal(r["closing"]), Decimal(r["closing_value"])) for r in movement] == [
        ("A", Decimal(15), Decimal(250))
    ]

    # The first run built the pool the revaluation settled: rolling it back would bring units back at the average.
    blocked = owner.post(f"/runs/{first['run_id']}/rollback")
    assert blocked.status_code == 409, blocked.text
    assert blocked.json()["error"]["reason"] == "ROLLBACK_BLOCKED"

    later = run(owner, [sale("S2", "A", "2024-05-04", "6")], [], "fifo")
    assert (later["status"], Decimal(later["total_cogs"])) == ("completed", Decimal(70))
    assert Decimal(owner.get("/reports/valuation").json()["total_value"]) == 180
    with snapshot(tenant_id) as session:
        assert verify_ledger(session, tenant_id).ok


def test_a_switch_with_nothing_carried_stays_synchronous(base: str) -> None:
    tenant_id, owner = make_tenant(base, prefix="rv-sync")
    seed_items(tenant_id, ["A", "B"])
    run(owner, [sale("S1", "A", "2024-05-03", "15")], TWO_LOTS, "lifo")
    events = query("SELECT count(*) FROM ledger_events", tenant_id=tenant_id)
    for sku, method in (("A", "fifo"), ("A", "moving_average"), ("A", "lifo"), ("B", "fifo")):
        switched = owner.put(f"/valuation-methods/{sku}", json={"method": method, "revalue": True})
        assert switched.status_code == 200, switched.text
        assert switched.json()["method"] == method
    assert query("SELECT count(*) FROM jobs WHERE kind = 'revaluation'", tenant_id=tenant_id) == [(0,)]
    assert query("SELECT count(*) FROM ledger_events", tenant_id=tenant_id) == events
    revalued = query(
        "SELECT DISTINCT details->>'revalued' FROM audit_events WHERE action = 'sku.valuation_method_switched'",
        tenant_id=tenant_id,
    )
    assert revalued == [("0",)]


def test_a_revaluation_whose_carried_value_is_gone_by_then_only_switches(
    base: str, service_urls: dict[str, str]
) -> None:
    """Accepted while 5 units carry -25 (the fence held, so no job runs meanwhile); a run accepted before it
    (ordered first in the ledger stream) sells the last 5, emptying the pool: the job finds nothing carried,
    posts no event, and switches."""
    tenant_id, owner = make_tenant(base, prefix="rv-gone")
    seed_items(tenant_id, ["A"])
    run(owner, [sale("S1", "A", "2024-05-03", "15")], TWO_LOTS, "moving_average")
    with fence_held(service_urls, tenant_id):
        emptying = owner.post(
            "/runs", json={"mode": "moving_average", "sales_data": [sale("S2", "A", "2024-05-04", "5")]}
        )
        assert emptying.status_code == 202, emptying.text
        accepted = owner.put("/valuation-methods/A", json={"method": "fifo", "revalue": True})
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["carried_value"] == "-25.00000000"
    job = owner.wait_job(accepted.json()["job_id"])
    assert job["status"] == "completed", job
    assert owner.get(f"/runs/{emptying.json()['run_id']}").json()["status"] == "completed"
    (result,) = query("SELECT result FROM jobs WHERE id = :j", {"j": job["job_id"]}, tenant_id=tenant_id)[0]
    assert (result["revalued"], result["lots"], result["first_seq"]) == ("0.00000000", 0, None)
    assert query("SELECT count(*) FROM ledger_events WHERE event_type = 'REVALUATION'", tenant_id=tenant_id) == [(0,)]
    assert query("SELECT method FROM sku_valuation_methods", tenant_id=tenant_id) == [("fifo",)]
    journal = owner.get(f"/revaluations/{accepted.json()['job_id']}/journal-entry")
    assert (journal.status_code, journal.json()["error"]["reason"]) == (422, "NO_DATA")


@pytest.mark.parametrize(
    "body",
    [
        {"method": "fifo", "revalue": "perhaps"},
        {"method": "fifo", "revalue": [True]},
        {"method": "fifo", "revalue": True, "amount": "5"},
        {"revalue": True},
        {"method": "average", "revalue": True},
    ],
)
def test_bad_switch_bodies_get_the_error_envelope(base: str, body: dict[str, Any]) -> None:
    tenant_id, owner = make_tenant(base, prefix="rv-bad")
    seed_items(tenant_id, ["A"])
    answer = owner.put("/valuation-methods/A", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "VALIDATION_FAILED"
    assert query("SELECT count(*) FROM jobs", tenant_id=tenant_id) == [(0,)]
