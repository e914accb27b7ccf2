"""The permission matrix, exhaustively: every role of both role models and the operator against every
endpoint of the API. A caller gets 403 FORBIDDEN exactly when `ROLE_PERMISSIONS` says its role lacks the
endpoint's permission. The endpoint table must cover every route the application serves."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from shared.auth import ROLE_PERMISSIONS, Permission
from tests.support import Api, key_for, make_tenant, operator, seed_master_data

P = Permission
Body = Callable[[dict[str, str]], Any]


def _unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Endpoint:
    method: str
    template: str  # as the router declares it, without the /api/v1 prefix
    permission: Permission | None  # None: public
    ids: dict[str, str] = field(default_factory=dict)  # path placeholder -> context key
    body: Body | None = None

    def url(self, ctx: dict[str, str]) -> str:
        return self.template.format(**{name: ctx[key] for name, key in self.ids.items()})


def _master(path: str, create: Body, update: Body, key: str) -> list[Endpoint]:
    one = f"{path}/{{record_id}}"
    return [
        Endpoint("POST", path, P.MASTER_WRITE, body=create),
        Endpoint("GET", path, P.READ),
        Endpoint("GET", one, P.READ, {"record_id": key}),
        Endpoint("PATCH", one, P.MASTER_WRITE, {"record_id": key}, update),
        Endpoint("DELETE", one, P.MASTER_WRITE, {"record_id": f"spare_{key}"}),
    ]


def _run_body(ctx: dict[str, str]) -> dict[str, Any]:
    lot_id = _unique("LOT")
    return {
        "mode": "fifo",
        "sales_data": [{"sale_id": _unique("S"), "sku": ctx["sku"], "sale_date": "2024-07-20", "quantity_sold": 1}],
        "lots_data": [
            {
                "lot_id": lot_id,
                "sku": ctx["sku"],
                "received_date": "2024-07-01",
                "original_quantity": 5,
                "remaining_quantity": 5,
                "unit_price": 1,
                "freight_cost_per_unit": 0,
            }
        ],
    }


REPORTS = ("stock-on-hand", "inventory-movement", "receiving-summary", "shrink-summary", "valuation")

ENDPOINTS: list[Endpoint] = [
    Endpoint(
        "POST",
        "/tenants",
        P.TENANTS_MANAGE,
        body=lambda _: {"tenant_id": _unique("perm"), "name": "n", "plan": "free", "role_model": "standard"},
    ),
    Endpoint(
        "PUT", "/tenants/{tenant_id}/plan", P.TENANTS_MANAGE, {"tenant_id": "tenant"}, lambda _: {"plan": "enterprise"}
    ),
    Endpoint("POST", "/keys", P.KEYS_MANAGE, body=lambda _: {"role": "owner", "name": "perm"}),
    Endpoint("DELETE", "/keys/{key_id}", P.KEYS_MANAGE, {"key_id": "missing"}),
    *_master("/categories", lambda _: {"name": "c"}, lambda _: {"name": "c2"}, "category"),
    *_master("/hubs", lambda _: {"name": "h"}, lambda _: {"name": "h2"}, "hub"),
    *_master("/bins", lambda c: {"hub_id": c["hub"], "name": "b"}, lambda _: {"name": "b2"}, "bin"),
    *_master("/vendors", lambda _: {"name": "v"}, lambda _: {"name": "v2"}, "vendor"),
    *_master(
        "/items",
        lambda c: {"sku": _unique("SKU"), "name": "i", "category_id": c["category"], "default_bin_id": c["bin"]},
        lambda _: {"name": "i2"},
        "item",
    ),
    Endpoint("POST", "/vendors/{vendor_id}/disable", P.MASTER_WRITE, {"vendor_id": "vendor"}),
    Endpoint("POST", "/vendors/{vendor_id}/enable", P.MASTER_WRITE, {"vendor_id": "vendor"}),
    Endpoint(
        "POST",
        "/receipts",
        P.RECEIPTS_WRITE,
        body=lambda c: {
            "vendor_id": c["vendor"],
            "received_at": "2024-07-01T00:00:00Z",
            "lines": [{"sku": c["sku"], "quantity": 1, "unit_cost": 1}],
        },
    ),
    Endpoint(
        "POST",
        "/counts",
        P.COUNTS_WRITE,
        body=lambda c: {
            "bin_id": c["bin"],
            "counted_at": "2024-08-01T00:00:00Z",
            "lines": [{"sku": c["sku"], "counted_quantity": 1, "unit_cost": 1}],
        },
    ),
    Endpoint("GET", "/counts", P.READ),
    Endpoint("GET", "/counts/{count_id}", P.READ, {"count_id": "count"}),
    Endpoint(
        "POST",
        "/returns",
        P.RECEIPTS_WRITE,
        body=lambda _: {
            "kind": "purchase",
            "lot_id": "LOT-MISSING",
            "quantity": 1,
            "returned_at": "2024-08-01T00:00:00Z",
        },
    ),
    Endpoint("GET", "/returns/{return_id}", P.READ, {"return_id": "return"}),
    Endpoint("GET", "/returns/{return_id}/journal-entry", P.READ, {"return_id": "return"}),
    Endpoint(
        "POST",
        "/landed-costs",
        P.RUNS_WRITE,
        body=lambda _: {"lot_id": "LOT-MISSING", "amount": 10, "allocated_at": "2024-08-01T00:00:00Z"},
    ),
    Endpoint("GET", "/landed-costs/{landed_cost_id}", P.READ, {"landed_cost_id": "landed_cost"}),
    Endpoint("GET", "/landed-costs/{landed_cost_id}/journal-entry", P.READ, {"landed_cost_id": "landed_cost"}),
    Endpoint("POST", "/runs", P.RUNS_WRITE, body=_run_body),
    Endpoint("GET", "/runs", P.READ),
    Endpoint("GET", "/runs/{run_id}", P.READ, {"run_id": "run"}),
    Endpoint("GET", "/runs/{run_id}/validation-errors", P.READ, {"run_id": "run"}),
    Endpoint("GET", "/runs/{run_id}/sales", P.READ, {"run_id": "run"}),
    Endpoint("GET", "/runs/{run_id}/allocations", P.READ, {"run_id": "run"}),
    Endpoint("GET", "/runs/{run_id}/journal-entry", P.READ, {"run_id": "run"}),
    Endpoint("POST", "/runs/{run_id}/rollback", P.RUNS_WRITE, {"run_id": "run"}),
    Endpoint("POST", "/reposts/{job_id}/rollback", P.RUNS_WRITE, {"job_id": "job"}),
    Endpoint("GET", "/settings", P.READ),
    Endpoint("PATCH", "/settings", P.SETTINGS_MANAGE, body=lambda _: {"backdated_entries": "reject"}),
    Endpoint("GET", "/jobs", P.READ),
    Endpoint("GET", "/jobs/{job_id}", P.READ, {"job_id": "job"}),
    Endpoint("GET", "/files/templates/{kind}", None, {"kind": "template"}),
    *(Endpoint("GET", f"/reports/{report}", P.READ) for report in REPORTS),
    Endpoint("POST", "/exports", P.EXPORTS_CREATE, body=lambda _: {"report": "valuation", "params": {}}),
    Endpoint("GET", "/exports", P.READ),
    Endpoint("GET", "/exports/{export_id}", P.READ, {"export_id": "export"}),
    Endpoint("GET", "/exports/{export_id}/download", P.READ, {"export_id": "export"}),
    Endpoint(
        "POST",
        "/integrations",
        P.INTEGRATIONS_MANAGE,
        body=lambda _: {"name": "perm", "url": "http://127.0.0.1:9/hook", "events": ["receipt.posted"]},
    ),
    Endpoint("GET", "/integrations", P.READ),
    Endpoint("GET", "/integrations/{integration_id}", P.READ, {"integration_id": "integration"}),
    Endpoint(
        "PATCH",
        "/integrations/{integration_id}",
        P.INTEGRATIONS_MANAGE,
        {"integration_id": "integration"},
        lambda _: {"name": "renamed"},
    ),
    Endpoint(
        "POST", "/integrations/{integration_id}/disable", P.INTEGRATIONS_MANAGE, {"integration_id": "integration"}
    ),
    Endpoint("POST", "/integrations/{integration_id}/enable", P.INTEGRATIONS_MANAGE, {"integration_id": "integration"}),
    Endpoint(
        "POST", "/integrations/{integration_id}/rotate-secret", P.INTEGRATIONS_MANAGE, {"integration_id": "integration"}
    ),
    Endpoint("GET", "/integrations/{integration_id}/outbox", P.READ, {"integration_id": "integration"}),
    Endpoint(
        "POST",
        "/integrations/{integration_id}/outbox/{event_id}/requeue",
        P.INTEGRATIONS_DISPATCH,
        {"integration_id": "integration", "event_id": "event"},
    ),
    Endpoint(
        "POST", "/integrations/{integration_id}/dispatch", P.INTEGRATIONS_DISPATCH, {"integration_id": "integration"}
    ),
    Endpoint("GET", "/integrations/{integration_id}/dispatches", P.READ, {"integration_id": "integration"}),
    Endpoint("GET", "/audit", P.READ),
    Endpoint("GET", "/settings/valuation", P.READ),
    Endpoint("PUT", "/settings/valuation", P.MASTER_WRITE, body=lambda _: {"default_method": "fifo"}),
    Endpoint("GET", "/valuation-methods", P.READ),
    Endpoint("PUT", "/valuation-methods/{sku}", P.MASTER_WRITE, {"sku": "sku"}, lambda _: {"method": "fifo"}),
    Endpoint("GET", "/revaluations/{job_id}/journal-entry", P.READ, {"job_id": "job"}),
    Endpoint("GET", "/ledger", P.READ),
]
# Endpoints an operator may call without naming a tenant.
PLATFORM_WIDE = {("POST", "/tenants"), ("PUT", "/tenants/{tenant_id}/plan")}


def test_the_table_covers_every_route_of_the_application():
    from api.main import PREFIX, app

    served = {
        (method.upper(), path.removeprefix(PREFIX))
        for path, operations in app.openapi()["paths"].items()
        if path.startswith(PREFIX) and path != f"{PREFIX}/health"
        for method in operations
    }
    covered = {(e.method, e.template) for e in ENDPOINTS}
    assert served - covered == set(), "add the new routes to ENDPOINTS with their permission"
    assert covered - served == set(), "ENDPOINTS names routes the application does not serve"


def test_operators_never_write_the_ledger():
    operator_permissions = ROLE_PERMISSIONS["platform"]["operator"]
    assert not operator_permissions & {P.RECEIPTS_WRITE, P.COUNTS_WRITE, P.RUNS_WRITE}


@pytest.fixture(scope="module")
def base(in_process):
    return in_process


def _context(base: str, role_model: str) -> tuple[dict[str, str], Api]:
    tenant_id, owner = make_tenant(base, role_model=role_model, prefix=f"perm-{role_model}")
    md = seed_master_data(owner, skus=("PERM-1",))
    ctx = {
        "tenant": tenant_id,
        "category": md.category_id,
        "hub": md.hub_id,
        "bin": md.bin_id,
        "vendor": md.vendor_id,
        "item": md.items["PERM-1"],
        "sku": "PERM-1",
        "template": "sales",
        "missing": "key_missing",
    }
    # Deletable twins, so a permitted DELETE removes something nobody else needs.
    for key, path, body in (
        ("category", "/categories", {"name": "spare"}),
        ("hub", "/hubs", {"name": "spare"}),
        ("vendor", "/vendors", {"name": "spare"}),
    ):
        ctx[f"spare_{key}"] = owner.post(path, json=body).json()["id"]
    ctx["spare_bin"] = owner.post("/bins", json={"hub_id": md.hub_id, "name": "spare"}).json()["id"]
    ctx["spare_item"] = owner.post(
        "/items", json={"sku": "SPARE", "name": "spare", "category_id": md.category_id}
    ).json()["id"]
    count = owner.post(
        "/counts",
        json={
            "bin_id": md.bin_id,
            "counted_at": "2024-08-01T00:00:00Z",
            "lines": [{"sku": "PERM-1", "counted_quantity": 0}],
        },
    )
    assert count.status_code == 202, count.text
    ctx["count"] = count.json()["count_id"]
    run = owner.post("/runs", json=_run_body(ctx))
    assert run.status_code == 202, run.text
    ctx["run"], ctx["job"] = run.json()["run_id"], run.json()["job_id"]
    ctx["return"], ctx["landed_cost"] = "ret_missing", "lc_missing"  # no worker runs here: 404 is not 403
    ctx["export"] = "exp_missing"  # an export needs ledger data, and no worker runs here: 404 is not 403
    integration = owner.post(
        "/integrations", json={"name": "perm", "url": "http://127.0.0.1:9/hook", "events": ["receipt.posted"]}
    )
    assert integration.status_code == 201, integration.text
    ctx["integration"], ctx["event"] = integration.json()["id"], "evt_missing"
    return ctx, owner


@pytest.fixture(scope="module")
def tenants(base):
    return {model: _context(base, model) for model in ("standard", "simple")}


PRINCIPALS = [(model, role) for model in ("standard", "simple") for role in ROLE_PERMISSIONS[model]] + [
    ("platform:standard", "operator"),
    ("platform:simple", "operator"),
]


def _call(api: Api, endpoint: Endpoint, ctx: dict[str, str]):
    kwargs = {"json": endpoint.body(ctx)} if endpoint.body else {}
    return api.http.request(endpoint.method, endpoint.url(ctx), **kwargs)


@pytest.mark.parametrize(("model", "role"), PRINCIPALS, ids=[f"{m}-{r}" for m, r in PRINCIPALS])
def test_role_gets_403_exactly_where_the_matrix_says(base, tenants, model, role):
    if model.startswith("platform:"):
        ctx, _ = tenants[model.split(":")[1]]
        api, permissions = operator(base, ctx["tenant"]), ROLE_PERMISSIONS["platform"]["operator"]
    else:
        ctx, _ = tenants[model]
        api, permissions = key_for(base, ctx["tenant"], role), ROLE_PERMISSIONS[model][role]
    wrong = []
    for endpoint in ENDPOINTS:
        response = _call(api, endpoint, ctx)
        forbidden = endpoint.permission is not None and endpoint.permission not in permissions
        refused = response.status_code == 403
        if refused != forbidden or response.status_code in (401, 500, 503):
            wrong.append((endpoint.method, endpoint.template, response.status_code, response.text[:200]))
        if forbidden:
            assert response.json()["error"]["code"] == "FORBIDDEN"
    assert wrong == []


def test_without_a_valid_key_every_endpoint_is_401(base, tenants):
    ctx, owner = tenants["standard"]
    created = operator(base, ctx["tenant"]).post("/keys", json={"role": "manager", "name": "to revoke"}).json()
    revoked = Api(base, created["key"])
    assert owner.delete(f"/keys/{created['id']}").status_code == 204
    anonymous = Api(base, "none")
    del anonymous.http.headers["Authorization"]
    for api in (anonymous, Api(base, "asora_unknown"), revoked):
        for endpoint in ENDPOINTS:
            response = _call(api, endpoint, ctx)
            expected = 200 if endpoint.permission is None else 401
            assert response.status_code == expected, (endpoint.method, endpoint.template, response.text)


def test_operator_without_a_tenant_is_refused_on_tenant_data(base, tenants):
    ctx, _ = tenants["standard"]
    api = operator(base)
    for endpoint in ENDPOINTS:
        if endpoint.permission is None or (endpoint.method, endpoint.template) in PLATFORM_WIDE:
            continue
        response = _call(api, endpoint, ctx)
        assert response.status_code in (403, 422), (endpoint.method, endpoint.template, response.text)
