"""The operations runbook's three error tables, row by row, through the HTTP API: common onboarding errors
(section 2), plan enforcement (section 5) and the fail-closed answers (section 7). Every row fails with its
explicit code, writes nothing, is audited when it concerns a tenant, and answers the same when repeated."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support import Api, create, key_for, make_tenant, operator


@pytest.fixture(scope="module")
def base(in_process):
    return in_process


@dataclass
class World:
    base: str
    tenant_id: str
    owner: Api
    viewer: Api
    clerk: Api
    revoked: Api
    hub_id: str
    category_id: str
    bin_id: str
    vendor_id: str
    disabled_vendor_id: str


@pytest.fixture(scope="module")
def world(base):
    tenant_id, owner = make_tenant(base, plan="free", prefix="runbook")
    hub = create(owner, "/hubs", {"name": "only hub"})
    category = create(owner, "/categories", {"name": "c"})
    bin_ = create(owner, "/bins", {"hub_id": hub["id"], "name": "b"})
    vendor = create(owner, "/vendors", {"name": "v"})
    disabled = create(owner, "/vendors", {"name": "ineligible"})
    assert owner.post(f"/vendors/{disabled['id']}/disable").status_code == 200
    created = operator(base, tenant_id).post("/keys", json={"role": "manager", "name": "leaver"}).json()
    assert owner.delete(f"/keys/{created['id']}").status_code == 204
    return World(
        base,
        tenant_id,
        owner,
        key_for(base, tenant_id, "viewer"),
        key_for(base, tenant_id, "clerk"),
        Api(base, created["key"]),
        hub["id"],
        category["id"],
        bin_["id"],
        vendor["id"],
        disabled["id"],
    )


Request = Callable[[World], httpx.Response]


def _receipt(w: World, vendor_id: str | None = None) -> dict[str, Any]:
    return {
        "vendor_id": vendor_id or w.vendor_id,
        "received_at": "2024-07-01T00:00:00Z",
        "lines": [{"sku": "NOT-YET", "quantity": 1, "unit_cost": 1}],
    }


def _anonymous(w: World) -> Api:
    api = Api(w.base, "none")
    del api.http.headers["Authorization"]
    return api


# (runbook table, row, request, status, code, reason)
ROWS: list[tuple[str, str, Request, int, str, str | None]] = [
    # Section 2, "Common Onboarding Errors".
    (
        "onboarding",
        "VALIDATION_FAILED: bin before its hub",
        lambda w: w.owner.post("/bins", json={"hub_id": "hub_not_created", "name": "b"}),
        422,
        "VALIDATION_FAILED",
        "MISSING_PARENT",
    ),
    (
        "onboarding",
        "VALIDATION_FAILED: item before its category",
        lambda w: w.owner.post("/items", json={"sku": "EARLY", "name": "i", "category_id": "cat_not_created"}),
        422,
        "VALIDATION_FAILED",
        "MISSING_PARENT",
    ),
    (
        "onboarding",
        "VALIDATION_FAILED: receiving before the vendor",
        lambda w: w.clerk.post("/receipts", json=_receipt(w, vendor_id="ven_not_created")),
        422,
        "VALIDATION_FAILED",
        "MISSING_PARENT",
    ),
    (
        "onboarding",
        "VALIDATION_FAILED: receiving before the item",
        lambda w: w.clerk.post("/receipts", json=_receipt(w)),
        422,
        "VALIDATION_FAILED",
        "UNKNOWN_SKU",
    ),
    (
        "onboarding",
        "PLAN_LIMIT_EXCEEDED: a second hub on the free plan",
        lambda w: w.owner.post("/hubs", json={"name": "second hub"}),
        402,
        "PLAN_LIMIT_EXCEEDED",
        None,
    ),
    (
        "onboarding",
        "FORBIDDEN: a viewer seeding master data",
        lambda w: w.viewer.post("/categories", json={"name": "not allowed"}),
        403,
        "FORBIDDEN",
        None,
    ),
    (
        "onboarding",
        "FORBIDDEN: a clerk creating items",
        lambda w: w.clerk.post("/items", json={"sku": "CLERK", "name": "i", "category_id": w.category_id}),
        403,
        "FORBIDDEN",
        None,
    ),
    # Section 5, "Distinguishing Errors".
    (
        "plan enforcement",
        "PLAN_LIMIT_EXCEEDED: commercial constraint (operator cannot override)",
        lambda w: operator(w.base, w.tenant_id).post("/hubs", json={"name": "operator hub"}),
        402,
        "PLAN_LIMIT_EXCEEDED",
        None,
    ),
    (
        "plan enforcement",
        "FORBIDDEN: permission issue",
        lambda w: w.viewer.post("/vendors", json={"name": "v"}),
        403,
        "FORBIDDEN",
        None,
    ),
    (
        "plan enforcement",
        "VALIDATION_FAILED: bad input",
        lambda w: w.owner.post("/vendors", json={"name": ""}),
        422,
        "VALIDATION_FAILED",
        None,
    ),
    (
        "plan enforcement",
        "VALIDATION_FAILED: bad state (disabled vendor)",
        lambda w: w.clerk.post("/receipts", json=_receipt(w, vendor_id=w.disabled_vendor_id)),
        422,
        "VALIDATION_FAILED",
        "VENDOR_DISABLED",
    ),
    # Section 7, "Common Fail-Closed Scenarios": 401 / 403.
    ("fail-closed", "401: no key", lambda w: _anonymous(w).get("/items"), 401, "UNAUTHENTICATED", None),
    (
        "fail-closed",
        "401: unknown key",
        lambda w: Api(w.base, "asora_guessed").post("/categories", json={"name": "x"}),
        401,
        "UNAUTHENTICATED",
        None,
    ),
    (
        "fail-closed",
        "401: revoked key",
        lambda w: w.revoked.post("/categories", json={"name": "x"}),
        401,
        "UNAUTHENTICATED",
        None,
    ),
    (
        "fail-closed",
        "401: not a bearer key",
        lambda w: w.owner.http.get("/items", headers={"Authorization": "Basic b3duZXI6cHc="}),
        401,
        "UNAUTHENTICATED",
        None,
    ),
    (
        "fail-closed",
        "403: role lacks the permission (ledger write)",
        lambda w: w.viewer.post("/receipts", json=_receipt(w)),
        403,
        "FORBIDDEN",
        None,
    ),
    (
        "fail-closed",
        "403: an operator never writes the ledger",
        lambda w: operator(w.base, w.tenant_id).post("/receipts", json=_receipt(w)),
        403,
        "FORBIDDEN",
        None,
    ),
    (
        "fail-closed",
        "403: export blocked by permission",
        lambda w: w.clerk.post("/exports", json={"report": "valuation", "params": {}}),
        403,
        "FORBIDDEN",
        None,
    ),
    (
        "fail-closed",
        "403: a key of this tenant naming another tenant",
        lambda w: w.owner.post("/categories", json={"tenant_id": "someone-else", "name": "x"}),
        403,
        "FORBIDDEN",
        "TENANT_MISMATCH",
    ),
]


def _without_request_id(body: dict[str, Any]) -> dict[str, Any]:
    return {"error": {k: v for k, v in body["error"].items() if k != "request_id"}}


def _snapshot(w: World) -> dict[str, int]:
    return {
        path: len(w.owner.get(path, params={"limit": 1000}).json()["items"])
        for path in ("/categories", "/hubs", "/bins", "/vendors", "/items", "/jobs", "/ledger")
    }


@pytest.mark.parametrize(("table", "row", "request_", "status", "code", "reason"), ROWS, ids=[r[1] for r in ROWS])
def test_runbook_error_row(world, table, row, request_, status, code, reason):
    before = _snapshot(world)
    audited_before = len(world.owner.get("/audit", params={"limit": 1000}).json()["items"])
    first, again = request_(world), request_(world)
    for response in (first, again):
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert set(error) == {"code", "reason", "message", "details", "request_id"}
        assert error["code"] == code
        if reason:
            assert error["reason"] == reason
    # deterministic: a blind retry changes nothing (but the request id, which names each request)
    assert _without_request_id(first.json()) == _without_request_id(again.json())
    assert _snapshot(world) == before  # no partial write
    refusals = [
        e
        for e in world.owner.get("/audit", params={"limit": 1000}).json()["items"][audited_before:]
        if e["outcome"] == "refused"
    ]
    if status == 401:
        assert refusals == []  # nobody to attribute it to; nothing about the tenant is revealed
    else:
        assert len(refusals) == 2, refusals
        assert {e["reason"] for e in refusals} == {first.json()["error"]["reason"] or code}
        assert {e["details"]["status"] for e in refusals} == {status}


def test_every_runbook_table_is_reproduced():
    assert {table for table, *_ in ROWS} == {"onboarding", "plan enforcement", "fail-closed"}
    codes = {(table, code) for table, _, _, _, code, _ in ROWS}
    for table in ("onboarding", "plan enforcement"):
        assert {c for t, c in codes if t == table} == {"VALIDATION_FAILED", "PLAN_LIMIT_EXCEEDED", "FORBIDDEN"}
    assert {c for t, c in codes if t == "fail-closed"} == {"UNAUTHENTICATED", "FORBIDDEN"}
