"""Master data through real HTTP: CRUD in onboarding order, parents, identity, soft delete, paging, vendor
eligibility, the audit trail, and intake validation of receipts and counts (no worker runs here)."""

from __future__ import annotations

import pytest

from tests.support import create, make_tenant, seed_master_data


@pytest.fixture(scope="module")
def base(in_process):
    return in_process


@pytest.fixture(scope="module")
def tenant(base):
    return make_tenant(base, prefix="inv")


def _error(response, status, code, reason=None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    if reason:
        assert error["reason"] == reason, error
    return error


def test_master_data_lifecycle_in_onboarding_order(tenant):
    _, owner = tenant
    category = create(owner, "/categories", {"name": "Fasteners"})
    hub = create(owner, "/hubs", {"name": "North"})
    bin_ = create(owner, "/bins", {"hub_id": hub["id"], "name": "N-01"})
    vendor = create(owner, "/vendors", {"name": "Bolt Co"})
    item = create(
        owner,
        "/items",
        {"sku": "BOLT-M6", "name": "M6 bolt", "category_id": category["id"], "default_bin_id": bin_["id"]},
    )
    for resource in (category, hub, bin_, vendor, item):
        assert isinstance(resource["id"], str)
        assert resource["created_at"].endswith("Z")
    assert vendor["enabled"] is True
    assert item == {
        "id": item["id"],
        "sku": "BOLT-M6",
        "name": "M6 bolt",
        "category_id": category["id"],
        "default_bin_id": bin_["id"],
        "created_at": item["created_at"],
    }
    assert owner.get(f"/items/{item['id']}").json() == item
    assert item["id"] in [i["id"] for i in owner.get("/items").json()["items"]]
    assert owner.get("/bins", params={"hub_id": hub["id"]}).json()["items"] == [bin_]

    renamed = owner.patch(f"/items/{item['id']}", json={"name": "M6 hex bolt", "sku": "BOLT-M6"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "M6 hex bolt"
    _error(owner.patch(f"/items/{item['id']}", json={"sku": "BOLT-M8"}), 422, "VALIDATION_FAILED", "IMMUTABLE_FIELD")
    _error(
        owner.patch(f"/bins/{bin_['id']}", json={"hub_id": "hub_other"}), 422, "VALIDATION_FAILED", "IMMUTABLE_FIELD"
    )
    _error(owner.patch(f"/items/{item['id']}", json={"name": None}), 422, "VALIDATION_FAILED")
    assert owner.get(f"/items/{item['id']}").json()["sku"] == "BOLT-M6"

    cleared = owner.patch(f"/items/{item['id']}", json={"default_bin_id": None})
    assert cleared.status_code == 200
    assert cleared.json()["default_bin_id"] is None
    assert owner.patch(f"/vendors/{vendor['id']}", json={"name": "Bolt Company"}).json()["name"] == "Bolt Company"

    assert owner.delete(f"/items/{item['id']}").status_code == 204
    _error(owner.get(f"/items/{item['id']}"), 404, "NOT_FOUND")
    _error(owner.patch(f"/items/{item['id']}", json={"name": "x"}), 404, "NOT_FOUND")
    _error(owner.delete(f"/items/{item['id']}"), 404, "NOT_FOUND")
    assert item["id"] not in [i["id"] for i in owner.get("/items").json()["items"]]


def test_a_missing_parent_is_422_missing_parent(tenant):
    _, owner = tenant
    hub = create(owner, "/hubs", {"name": "South"})
    category = create(owner, "/categories", {"name": "Paint"})
    bin_ = create(owner, "/bins", {"hub_id": hub["id"], "name": "S-01"})
    cases = [
        ("/bins", {"hub_id": "hub_missing", "name": "x"}, "hub_id"),
        ("/items", {"sku": "P-1", "name": "p", "category_id": "cat_missing"}, "category_id"),
        (
            "/items",
            {"sku": "P-1", "name": "p", "category_id": category["id"], "default_bin_id": "bin_missing"},
            "default_bin_id",
        ),
    ]
    for path, body, field in cases:
        error = _error(owner.post(path, json=body), 422, "VALIDATION_FAILED", "MISSING_PARENT")
        assert error["details"][0]["field"] == field
    renamed = owner.patch(f"/bins/{bin_['id']}", json={"hub_id": hub["id"], "name": "S-02"})
    assert renamed.status_code == 200, renamed.text
    # A soft-deleted parent is missing too.
    empty_hub = create(owner, "/hubs", {"name": "Gone"})
    assert owner.delete(f"/hubs/{empty_hub['id']}").status_code == 204
    _error(
        owner.post("/bins", json={"hub_id": empty_hub["id"], "name": "x"}), 422, "VALIDATION_FAILED", "MISSING_PARENT"
    )


def test_duplicate_sku_is_409_and_a_deleted_sku_can_be_reused(tenant):
    _, owner = tenant
    category = create(owner, "/categories", {"name": "Dup"})
    body = {"sku": "DUP-1", "name": "first", "category_id": category["id"]}
    first = create(owner, "/items", body)
    _error(owner.post("/items", json=body), 409, "CONFLICT", "ALREADY_EXISTS")
    assert owner.delete(f"/items/{first['id']}").status_code == 204
    again = create(owner, "/items", body)
    assert again["id"] != first["id"]


def test_parents_in_use_cannot_be_deleted(tenant):
    _, owner = tenant
    hub = create(owner, "/hubs", {"name": "Busy"})
    bin_ = create(owner, "/bins", {"hub_id": hub["id"], "name": "B-01"})
    category = create(owner, "/categories", {"name": "Busy"})
    create(owner, "/items", {"sku": "BUSY-1", "name": "b", "category_id": category["id"], "default_bin_id": bin_["id"]})
    for path in (f"/hubs/{hub['id']}", f"/bins/{bin_['id']}", f"/categories/{category['id']}"):
        _error(owner.delete(path), 422, "VALIDATION_FAILED", "IN_USE")
        assert owner.get(path).status_code == 200


def test_lists_page_with_a_cursor(base):
    _, owner = make_tenant(base, prefix="page")
    ids = [create(owner, "/vendors", {"name": f"v{n}"})["id"] for n in range(5)]
    seen, cursor = [], None
    while True:
        page = owner.get("/vendors", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        assert len(page["items"]) <= 2
        seen += [v["id"] for v in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    assert [v["id"] for v in owner.get("/vendors").json()["items"]] == ids
    for bad in ({"limit": 0}, {"limit": 1001}, {"limit": "x"}, {"cursor": "a\x00b"}):
        _error(owner.get("/vendors", params=bad), 422, "VALIDATION_FAILED")
    assert owner.get("/vendors", params={"limit": 1000}).status_code == 200


def test_vendor_eligibility_changes_are_audited(tenant):
    tenant_id, owner = tenant
    vendor = create(owner, "/vendors", {"name": "Flaky"})
    disabled = owner.post(f"/vendors/{vendor['id']}/disable")
    assert disabled.status_code == 200
    assert disabled.json()["enabled"] is False
    assert owner.get(f"/vendors/{vendor['id']}").json()["enabled"] is False
    assert owner.post(f"/vendors/{vendor['id']}/enable").json()["enabled"] is True
    _error(owner.post("/vendors/ven_missing/disable"), 404, "NOT_FOUND")
    events = owner.get("/audit", params={"action": "vendor.disabled"}).json()["items"]
    assert [(e["target"], e["outcome"]) for e in events if e["target"] == vendor["id"]] == [(vendor["id"], "ok")]
    enabled = owner.get("/audit", params={"action": "vendor.enabled"}).json()["items"]
    assert [e["target"] for e in enabled] == [vendor["id"]]
    assert enabled[0]["tenant_id"] == tenant_id


def test_every_mutation_and_refusal_is_in_the_audit_trail(base):
    _tenant_id, owner = make_tenant(base, prefix="aud")
    md = seed_master_data(owner, skus=("AUD-1",))
    owner.patch(f"/hubs/{md.hub_id}", json={"name": "renamed"}, headers={"X-Request-ID": "req-audit-1"})
    owner.post("/bins", json={"hub_id": "hub_missing", "name": "x"})
    events = owner.get("/audit").json()["items"]
    actions = [e["action"] for e in events]
    for action in (
        "key.created",
        "category.created",
        "hub.created",
        "bin.created",
        "vendor.created",
        "item.created",
        "hub.updated",
    ):
        assert action in actions, actions
    updated = next(e for e in events if e["action"] == "hub.updated")
    assert updated["request_id"] == "req-audit-1"
    assert updated["actor_role"] == "owner"
    assert updated["actor_key_id"].startswith("key_")
    assert updated["details"] == {"changes": {"name": "renamed"}}
    refused = [e for e in events if e["outcome"] == "refused"]
    assert refused
    assert refused[-1]["reason"] == "MISSING_PARENT"

    page = owner.get("/audit", params={"limit": 2}).json()
    assert len(page["items"]) == 2
    assert page["next_cursor"] == page["items"][1]["id"]
    rest = owner.get("/audit", params={"cursor": page["next_cursor"]}).json()["items"]
    assert [e["id"] for e in page["items"] + rest] == [e["id"] for e in events]
    assert owner.get("/audit", params={"from": "2999-01-01T00:00:00Z"}).json()["items"] == []
    assert len(owner.get("/audit", params={"to": "2999-01-01"}).json()["items"]) == len(events)
    _error(owner.get("/audit", params={"from": "yesterday"}), 422, "VALIDATION_FAILED")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/categories", {"name": ""}),
        ("/categories", {"name": "   "}),
        ("/categories", {"name": "a\x00b"}),
        ("/categories", {"name": "x" * 201}),
        ("/categories", {"name": 5}),
        ("/categories", {"name": "ok", "color": "red"}),
        ("/categories", []),
        ("/hubs", None),
        ("/items", {"sku": "S\nKU", "name": "n", "category_id": "c"}),
        ("/bins", {"name": "no hub"}),
    ],
)
def test_malformed_master_data_is_422_never_5xx(tenant, path, body):
    _, owner = tenant
    response = owner.post(path, json=body) if body is not None else owner.post(path, content=b"{bad json")
    _error(response, 422, "VALIDATION_FAILED")


@pytest.mark.parametrize("record_id", ["x" * 500, "..", "%E2%98%83", "cat_%27%3B--"])
def test_odd_ids_are_404(tenant, record_id):
    _, owner = tenant
    for method in ("get", "patch", "delete"):
        kwargs = {"json": {"name": "x"}} if method == "patch" else {}
        response = getattr(owner, method)(f"/categories/{record_id}", **kwargs)
        assert response.status_code in (404, 405), response.text


def test_a_nul_in_an_id_is_refused_before_any_lookup(tenant):
    _, owner = tenant
    for method in ("get", "patch", "delete"):
        kwargs = {"json": {"name": "x"}} if method == "patch" else {}
        response = getattr(owner, method)("/categories/a%00b", **kwargs)
        _error(response, 422, "VALIDATION_FAILED")


def _receipt(md, **line):
    return {
        "vendor_id": md.vendor_id,
        "received_at": "2024-07-01T00:00:00Z",
        "lines": [{"sku": "INT-1", "quantity": "10", "unit_cost": "2.5", **line}],
    }


@pytest.fixture(scope="module")
def intake_md(tenant):
    return seed_master_data(tenant[1], skus=("INT-1",))


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ({"quantity": "1.00001"}, "quantity"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": "-1"}, "quantity"),
        ({"quantity": "1e3"}, "quantity"),
        ({"quantity": "NaN"}, "quantity"),
        ({"quantity": True}, "quantity"),
        ({"quantity": "1,000"}, "quantity"),
        ({"quantity": "99999999999"}, "quantity"),
        ({"unit_cost": "-0.01"}, "unit_cost"),
        ({"unit_cost": 1.23456}, "unit_cost"),
        ({"freight_cost_per_unit": "abc"}, "freight_cost_per_unit"),
        ({"lot_id": ""}, "lot_id"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_receipt_lines_are_validated_at_intake(tenant, intake_md, line, field):
    _, owner = tenant
    error = _error(owner.post("/receipts", json=_receipt(intake_md, **line)), 422, "VALIDATION_FAILED")
    assert error["details"][0]["row"] == 1
    assert error["details"][0]["field"] == field


def test_receipt_intake_refuses_unknown_references_with_rows(tenant, intake_md):
    _, owner = tenant
    body = _receipt(intake_md)
    body["lines"] += [
        {"sku": "NOPE", "quantity": 1, "unit_cost": 1},
        {"sku": "INT-1", "bin_id": "bin_missing", "quantity": 1, "unit_cost": 1},
        {"sku": "INT-1", "quantity": 1, "unit_cost": 1, "lot_id": "L1"},
        {"sku": "INT-1", "quantity": 1, "unit_cost": 1, "lot_id": "L1"},
    ]
    error = _error(owner.post("/receipts", json=body), 422, "VALIDATION_FAILED", "MULTIPLE")
    assert [(d["row"], d["reason"]) for d in error["details"]] == [
        (2, "UNKNOWN_SKU"),
        (3, "MISSING_PARENT"),
        (5, "LOT_CONFLICT"),
    ]
    _error(
        owner.post("/receipts", json={**body, "vendor_id": "ven_missing"}), 422, "VALIDATION_FAILED", "MISSING_PARENT"
    )
    _error(
        owner.post("/receipts", json={**_receipt(intake_md), "received_at": "2024-07-01T00:00:00"}),
        422,
        "VALIDATION_FAILED",
    )
    _error(owner.post("/receipts", json={**_receipt(intake_md), "lines": []}), 422, "VALIDATION_FAILED")


def test_receipt_accepted_as_a_queued_job_with_idempotency(tenant, intake_md):
    _, owner = tenant
    headers = {"Idempotency-Key": "receipt-1"}
    first = owner.post("/receipts", json=_receipt(intake_md), headers=headers)
    assert first.status_code == 202, first.text
    assert first.json()["kind"] == "receipt"
    assert first.json()["status"] == "queued"
    same = owner.post("/receipts", json=_receipt(intake_md, quantity=10.0), headers=headers)
    assert same.status_code == 202
    assert same.json() == first.json()
    _error(
        owner.post("/receipts", json=_receipt(intake_md, quantity=11), headers=headers),
        422,
        "VALIDATION_FAILED",
        "IDEMPOTENCY_KEY_REUSED",
    )
    job = owner.get(f"/jobs/{first.json()['job_id']}").json()
    assert job["kind"] == "receipt"
    assert job["status"] == "queued"


def test_disabled_vendor_is_refused_at_intake(tenant, intake_md):
    _, owner = tenant
    vendor = create(owner, "/vendors", {"name": "Off"})
    owner.post(f"/vendors/{vendor['id']}/disable").raise_for_status()
    body = {**_receipt(intake_md), "vendor_id": vendor["id"]}
    _error(owner.post("/receipts", json=body), 422, "VALIDATION_FAILED", "VENDOR_DISABLED")


def test_count_intake_validation(tenant, intake_md):
    _, owner = tenant
    good = {
        "bin_id": intake_md.bin_id,
        "counted_at": "2024-08-01T00:00:00Z",
        "lines": [{"sku": "INT-1", "counted_quantity": 0}],
    }
    for body, reason in (
        ({**good, "bin_id": "bin_missing"}, "MISSING_PARENT"),
        ({**good, "lines": [{"sku": "NOPE", "counted_quantity": 1, "unit_cost": 1}]}, "UNKNOWN_SKU"),
        ({**good, "lines": [{"sku": "INT-1", "counted_quantity": "-1"}]}, "BAD_REQUEST"),
        ({**good, "lines": good["lines"] * 2}, "DUPLICATE_LINE"),
    ):
        _error(owner.post("/counts", json=body), 422, "VALIDATION_FAILED", reason)
    accepted = owner.post("/counts", json=good)
    assert accepted.status_code == 202, accepted.text
    count = owner.get(f"/counts/{accepted.json()['count_id']}").json()
    assert count["status"] in ("queued", "running", "completed")
    assert count["lines"][0]["counted_quantity"] == "0.0000"
