"""Intake through real HTTP: authentication, malformed input, idempotency, and a run end to end."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import Api, make_tenant, seed_items

RUNBOOK_BODY = {
    "mode": "fifo",
    "sales_data": [
        {"sale_id": "SALE001", "sku": "WIDGET-A", "sale_date": "2024-07-20T10:00:00Z", "quantity_sold": 100}
    ],
    "lots_data": [
        {
            "lot_id": "LOT001",
            "sku": "WIDGET-A",
            "received_date": "2024-07-01T00:00:00Z",
            "original_quantity": 500,
            "remaining_quantity": 500,
            "unit_price": 10.00,
            "freight_cost_per_unit": 1.00,
        }
    ],
}


@pytest.fixture(scope="module")
def base(shared_stack):
    return shared_stack


def _envelope(response, status, code, reason=None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error) == {"code", "reason", "message", "details", "request_id"}
    if reason:
        assert error["reason"] == reason
    return error


def test_unknown_key_is_401_in_the_envelope(base):
    _envelope(Api(base, "asora_not-a-key").get("/runs"), 401, "UNAUTHENTICATED")
    _envelope(Api(base, "").http.get("/runs", headers={"Authorization": ""}), 401, "UNAUTHENTICATED")


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1,2",
        b"\xff\xfe",
        b"null",
        b"[]",
        b'{"sales_data": 5}',
        b'{"sales_data": [], "mode": "standard"}',
        b'{"sales_data": [], "extra": 1}',
    ],
)
def test_malformed_bodies_are_422_never_5xx(base, body):
    _, owner = make_tenant(base)
    response = owner.post("/runs", content=body, headers={"Content-Type": "application/json"})
    _envelope(response, 422, "VALIDATION_FAILED")
    assert "Traceback" not in response.text


def test_runbook_example_runs_end_to_end(base):
    tenant_id, owner = make_tenant(base)
    seed_items(tenant_id, ["WIDGET-A"])
    body: dict[str, Any] = {"tenant_id": tenant_id, **RUNBOOK_BODY}
    body["sales_data"] = [{**r, "tenant_id": tenant_id} for r in body["sales_data"]]
    accepted = owner.post("/runs", json=body)
    assert accepted.status_code == 202, accepted.text
    job = owner.wait_job(accepted.json()["job_id"])
    assert job["status"] == "completed", job
    run = owner.get(f"/runs/{accepted.json()['run_id']}").json()
    assert run["status"] == "completed"
    assert run["total_cogs"] == "1100.00000000"
    assert run["total_quantity"] == "100.0000"
    sales = owner.get(f"/runs/{run['run_id']}/sales").json()["items"]
    assert sales == [
        {
            "sale_id": "SALE001",
            "sku": "WIDGET-A",
            "sale_date": "2024-07-20T10:00:00Z",
            "quantity": "100.0000",
            "cogs": "1100.00000000",
        }
    ]


def test_body_tenant_that_differs_from_the_key_is_403(base):
    _, owner = make_tenant(base)
    _envelope(owner.post("/runs", json={"tenant_id": "someone-else", **RUNBOOK_BODY}), 403, "FORBIDDEN")


def test_same_idempotency_key_twice_gives_one_job(base, service_urls):
    tenant_id, owner = make_tenant(base)
    seed_items(tenant_id, ["WIDGET-A"])
    headers = {"Idempotency-Key": "run-2024-07"}
    first = owner.post("/runs", json=RUNBOOK_BODY, headers=headers)
    second = owner.post("/runs", json=RUNBOOK_BODY, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    jobs = owner.get("/jobs").json()["items"]
    assert [j["job_id"] for j in jobs] == [first.json()["job_id"]]

    other = dict(RUNBOOK_BODY, dry_run=True)
    _envelope(owner.post("/runs", json=other, headers=headers), 422, "VALIDATION_FAILED", "IDEMPOTENCY_KEY_REUSED")
    assert len(owner.get("/jobs").json()["items"]) == 1
