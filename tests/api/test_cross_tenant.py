"""Tenant isolation through the API: tenant A's key (and the operator acting for A) on any of tenant B's
ids gets 404 and none of B's data; listings never show B's rows; B's ids in A's bodies are missing parents."""

from __future__ import annotations

import pytest
import redis

from shared.config import get_settings
from shared.jobs import runner
from shared.registry import TABLE
from tests.support import Api, make_tenant, operator, seed_master_data


@pytest.fixture(scope="module")
def base(in_process):
    return in_process


def _drain(service_urls, tenant_id: str) -> None:
    """Run the tenant's pending jobs in this process (this module starts no worker)."""
    client = redis.Redis.from_url(service_urls["redis_url"])
    runner.drain_tenant(tenant_id, worker="test", redis_client=client, settings=get_settings(), kinds=TABLE)


@pytest.fixture(scope="module")
def tenant_b(base, service_urls):
    tenant_id, owner = make_tenant(base, prefix="iso-b")
    md = seed_master_data(owner, skus=("B-ONLY",))
    integration = owner.post(
        "/integrations", json={"name": "b erp", "url": "http://127.0.0.1:9/b", "events": ["receipt.posted"]}
    )
    assert integration.status_code == 201, integration.text
    receipt = owner.post(
        "/receipts",
        json={
            "vendor_id": md.vendor_id,
            "received_at": "2024-07-01T00:00:00Z",
            "lines": [{"sku": "B-ONLY", "quantity": 5, "unit_cost": 2, "lot_id": "B-LOT"}],
        },
    )
    assert receipt.status_code == 202, receipt.text
    _drain(service_urls, tenant_id)
    assert owner.get(f"/jobs/{receipt.json()['job_id']}").json()["status"] == "completed"
    returned = owner.post(
        "/returns", json={"kind": "purchase", "lot_id": "B-LOT", "quantity": 1, "returned_at": "2024-07-02T00:00:00Z"}
    )
    landed = owner.post("/landed-costs", json={"lot_id": "B-LOT", "amount": 3, "allocated_at": "2024-07-03T00:00:00Z"})
    count = owner.post(
        "/counts",
        json={
            "bin_id": md.bin_id,
            "counted_at": "2024-08-01T00:00:00Z",
            "lines": [{"sku": "B-ONLY", "counted_quantity": 5}],
        },
    )
    run = owner.post(
        "/runs",
        json={
            "mode": "fifo",
            "sales_data": [{"sale_id": "B-S1", "sku": "B-ONLY", "sale_date": "2024-07-20", "quantity_sold": 1}],
        },
    )
    export = owner.post("/exports", json={"report": "valuation", "params": {}})
    key = operator(base, tenant_id).post("/keys", json={"role": "viewer", "name": "b viewer"})
    outbox = owner.get(f"/integrations/{integration.json()['id']}/outbox").json()["items"]
    assert outbox, "B's integration queued the receipt"
    for response in (returned, landed, count, run, export):
        assert response.status_code == 202, response.text
    assert key.status_code == 201, key.text
    ids = {
        "category": md.category_id,
        "hub": md.hub_id,
        "bin": md.bin_id,
        "vendor": md.vendor_id,
        "item": md.items["B-ONLY"],
        "count": count.json()["count_id"],
        "job": receipt.json()["job_id"],
        "run": run.json()["run_id"],
        "export": export.json()["export_id"],
        "return": returned.json()["return_id"],
        "landed_cost": landed.json()["landed_cost_id"],
        "key": key.json()["id"],
        "integration": integration.json()["id"],
        "event": outbox[0]["event_id"],
    }
    return tenant_id, owner, ids


@pytest.fixture(scope="module")
def tenant_a(base):
    tenant_id, owner = make_tenant(base, prefix="iso-a")
    return tenant_id, owner, seed_master_data(owner, skus=("A-ONLY",))


Probe = tuple[str, str, dict[str, str] | None]


def _probes(ids: dict[str, str]) -> list[Probe]:
    probes: list[Probe] = []
    for kind, path in (
        ("category", "/categories"),
        ("hub", "/hubs"),
        ("bin", "/bins"),
        ("vendor", "/vendors"),
        ("item", "/items"),
    ):
        one = f"{path}/{ids[kind]}"
        probes += [("GET", one, None), ("PATCH", one, {"name": "hijacked"}), ("DELETE", one, None)]
    probes += [
        ("POST", f"/vendors/{ids['vendor']}/disable", None),
        ("POST", f"/vendors/{ids['vendor']}/enable", None),
        ("GET", f"/counts/{ids['count']}", None),
        ("GET", f"/jobs/{ids['job']}", None),
        ("GET", f"/runs/{ids['run']}", None),
        ("GET", f"/runs/{ids['run']}/validation-errors", None),
        ("GET", f"/runs/{ids['run']}/sales", None),
        ("GET", f"/runs/{ids['run']}/allocations", None),
        ("GET", f"/runs/{ids['run']}/journal-entry", None),
        ("POST", f"/runs/{ids['run']}/rollback", None),
        ("GET", f"/returns/{ids['return']}", None),
        ("GET", f"/returns/{ids['return']}/journal-entry", None),
        ("GET", f"/landed-costs/{ids['landed_cost']}", None),
        ("GET", f"/landed-costs/{ids['landed_cost']}/journal-entry", None),
        ("GET", f"/exports/{ids['export']}", None),
        ("GET", f"/exports/{ids['export']}/download", None),
        ("DELETE", f"/keys/{ids['key']}", None),
    ]
    one = f"/integrations/{ids['integration']}"
    probes += [
        ("GET", one, None),
        ("PATCH", one, {"name": "hijacked"}),
        ("POST", f"{one}/disable", None),
        ("POST", f"{one}/enable", None),
        ("POST", f"{one}/rotate-secret", None),
        ("GET", f"{one}/outbox", None),
        ("POST", f"{one}/outbox/{ids['event']}/requeue", None),
        ("POST", f"{one}/dispatch", None),
        ("GET", f"{one}/dispatches", None),
    ]
    return probes


def _operator_may_not(method: str, path: str) -> bool:
    """Operators never write the ledger (rollback) nor manage a tenant's integrations."""
    if method == "POST" and path.endswith("/rollback"):
        return True
    managing = method == "PATCH" or path.endswith(("/disable", "/enable", "/rotate-secret"))
    return path.startswith("/integrations/") and managing


def _as_a(base: str, tenant_a, who: str) -> Api:
    tenant_id, owner, _ = tenant_a
    return owner if who == "owner" else operator(base, tenant_id)


@pytest.mark.parametrize("who", ["owner", "operator"])
def test_another_tenants_ids_are_404_without_data(base, tenant_a, tenant_b, who):
    api = _as_a(base, tenant_a, who)
    b_tenant, _, ids = tenant_b
    leaked: list[tuple[str, str, int | str, str]] = []
    for method, path, body in _probes(ids):
        response = api.http.request(method, path, json=body)
        if who == "operator" and _operator_may_not(method, path):
            assert response.status_code == 403  # the role is refused before anything is looked up
            continue
        if response.status_code != 404 or response.json()["error"]["code"] != "NOT_FOUND":
            leaked.append((method, path, response.status_code, response.text[:200]))
        elif b_tenant in response.text or "B-ONLY" in response.text:
            leaked.append((method, path, "names B", response.text[:200]))
    assert leaked == []


def test_b_is_untouched_by_the_probes(tenant_b):
    _, owner, ids = tenant_b
    assert owner.get(f"/vendors/{ids['vendor']}").json()["enabled"] is True
    for kind, path in (("category", "/categories"), ("hub", "/hubs"), ("item", "/items")):
        assert owner.get(f"{path}/{ids[kind]}").json()["name"] != "hijacked"
    assert owner.get(f"/runs/{ids['run']}").json()["status"] == "queued"
    assert owner.get("/jobs", params={"kind": "rollback"}).json()["items"] == []
    integration = owner.get(f"/integrations/{ids['integration']}").json()
    assert integration["name"] == "b erp" and integration["enabled"] is True
    assert integration["previous_secret_valid_until"] is None  # never rotated
    assert owner.get("/jobs", params={"kind": "dispatch"}).json()["items"] == []


@pytest.mark.parametrize("who", ["owner", "operator"])
def test_listings_never_show_another_tenants_rows(base, tenant_a, tenant_b, who):
    api = _as_a(base, tenant_a, who)
    b_tenant, _, ids = tenant_b
    for path in (
        "/categories",
        "/hubs",
        "/bins",
        "/vendors",
        "/items",
        "/counts",
        "/jobs",
        "/runs",
        "/exports",
        "/integrations",
        "/audit",
        "/ledger",
        "/reports/stock-on-hand",
        "/reports/valuation",
    ):
        response = api.get(path, params={"limit": 1000} if not path.startswith("/reports") else {})
        assert response.status_code == 200, (path, response.text)
        text = response.text
        assert b_tenant not in text, path
        assert not [i for i in ids.values() if i in text], path
        assert "B-ONLY" not in text, path
    assert api.get("/ledger", params={"sku": "B-ONLY"}).json()["items"] == []


def test_another_tenants_ids_in_a_body_are_missing_parents(tenant_a, tenant_b):
    _, owner, md = tenant_a
    _, _, ids = tenant_b
    cases = [
        ("/bins", {"hub_id": ids["hub"], "name": "x"}, "MISSING_PARENT"),
        ("/items", {"sku": "X-1", "name": "x", "category_id": ids["category"]}, "MISSING_PARENT"),
        (
            "/items",
            {"sku": "X-2", "name": "x", "category_id": md.category_id, "default_bin_id": ids["bin"]},
            "MISSING_PARENT",
        ),
        (
            "/receipts",
            {
                "vendor_id": ids["vendor"],
                "received_at": "2024-07-01T00:00:00Z",
                "lines": [{"sku": "A-ONLY", "quantity": 1, "unit_cost": 1}],
            },
            "MISSING_PARENT",
        ),
        (
            "/receipts",
            {
                "vendor_id": md.vendor_id,
                "received_at": "2024-07-01T00:00:00Z",
                "lines": [{"sku": "A-ONLY", "bin_id": ids["bin"], "quantity": 1, "unit_cost": 1}],
            },
            "MISSING_PARENT",
        ),
        (
            "/receipts",
            {
                "vendor_id": md.vendor_id,
                "received_at": "2024-07-01T00:00:00Z",
                "lines": [{"sku": "B-ONLY", "quantity": 1, "unit_cost": 1}],
            },
            "UNKNOWN_SKU",
        ),
        (
            "/counts",
            {
                "bin_id": ids["bin"],
                "counted_at": "2024-08-01T00:00:00Z",
                "lines": [{"sku": "A-ONLY", "counted_quantity": 0}],
            },
            "MISSING_PARENT",
        ),
        (
            "/returns",
            {"kind": "purchase", "lot_id": "B-LOT", "quantity": 1, "returned_at": "2024-08-01T00:00:00Z"},
            "MISSING_PARENT",
        ),
        (
            "/returns",
            {"kind": "sale", "sale_id": "B-S1", "quantity": 1, "returned_at": "2024-08-01T00:00:00Z"},
            "MISSING_PARENT",
        ),
        ("/landed-costs", {"lot_id": "B-LOT", "amount": 1, "allocated_at": "2024-08-01T00:00:00Z"}, "MISSING_PARENT"),
    ]
    for path, body, reason in cases:
        response = owner.post(path, json=body)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["error"]["reason"] == reason, (path, response.text)


def test_a_body_naming_another_tenant_is_403(tenant_a, tenant_b):
    _, owner, _ = tenant_a
    b_tenant, _, _ = tenant_b
    response = owner.post("/categories", json={"tenant_id": b_tenant, "name": "planted"})
    assert response.status_code == 403, response.text
    assert response.json()["error"]["reason"] == "TENANT_MISMATCH"
