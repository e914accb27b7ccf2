"""Schemathesis over the whole schema, against the API served in this process: for generated requests, valid
and invalid, every answer's status code, content type, headers and body conform to what the schema declares,
and none is a 5xx. Two callers walk every operation: a tenant owner (valid and invalid data, boundary values
included), and the operator acting on that tenant (valid data).

The tenant is stocked first (master data through the API; receipts, a costed run, an adjustment and its
reversal through the ledger factories), so reports, the ledger and a run's results answer with rows; about half
of the generated ids, in paths and in bodies, are replaced by ids that exist, so requests get past the lookups
into the services. Generation is deterministic and bounded."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import ASGIClient
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.main import app
from shared import db
from tests.conftest import OPERATOR_KEY
from tests.support import (
    Api,
    ledger_move,
    ledger_receive,
    ledger_reverse,
    ledger_run,
    make_tenant,
    operator,
    seed_master_data,
)

CONFORMANCE = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
SEED = 20261201
# Examples per operation and generation mode; raise it for a deeper search (ASORA_SCHEMATHESIS_EXAMPLES=50).
EXAMPLES = int(os.environ.get("ASORA_SCHEMATHESIS_EXAMPLES", "5"))
DOCUMENT = app.openapi()


def _config(mode: str, examples: int, *, coverage: bool) -> schemathesis.Config:
    generation = {"mode": mode, "max-examples": examples, "deterministic": True, "with-security-parameters": False}
    phases = {"stateful": {"enabled": False}, "coverage": {"enabled": coverage}}
    return schemathesis.Config.from_dict({"seed": SEED, "generation": generation, "phases": phases})


# The owner: valid and invalid data, with the coverage phase's boundary values.
OWNER_SCHEMA = schemathesis.openapi.from_dict(DOCUMENT, config=_config("all", EXAMPLES, coverage=True))
# The operator: valid data only (its refusals are the permission tests' subject).
OPERATOR_SCHEMA = schemathesis.openapi.from_dict(DOCUMENT, config=_config("positive", EXAMPLES - 1, coverage=False))
SALES_CSV = b"sale_id,sku,sale_date,quantity_sold\nS-CSV,WIDGET-A,2024-07-25,1\n"


def _heads(value: Any) -> bool:
    """A coin flip decided by the generated value itself, so the run stays deterministic."""
    return hashlib.sha256(repr(value).encode()).digest()[0] % 2 == 0


def _pick(candidates: list[str], value: Any) -> str:
    return candidates[hashlib.sha256(repr(value).encode()).digest()[1] % len(candidates)]


@dataclass
class Tenant:
    tenant_id: str
    owner_key: str
    path_ids: dict[str, list[str]]  # path parameter (record_id: per collection) -> ids that exist
    body_ids: dict[str, list[str]] = field(default_factory=dict)  # body field -> ids that exist

    def adopt_path(self, path: str, parameters: dict[str, Any]) -> None:
        for name, value in parameters.items():
            key = f"record_id:{path.split('/')[3]}" if name == "record_id" else name
            if key in self.path_ids and _heads(value):
                parameters[name] = _pick(self.path_ids[key], value)

    def adopt_body(self, body: Any) -> Any:
        if isinstance(body, list):
            return [self.adopt_body(item) for item in body]
        if not isinstance(body, dict):
            return body
        adopted: dict[str, Any] = {}
        for name, value in body.items():
            if name in self.body_ids and isinstance(value, str) and _heads(value):
                adopted[name] = _pick(self.body_ids[name], value)
            elif name == "sales_file" and _heads(value):
                adopted[name] = SALES_CSV
            else:
                adopted[name] = self.adopt_body(value)
        return adopted


@pytest.fixture(scope="module")
def tenant(in_process: str) -> Tenant:
    tenant_id, owner = make_tenant(in_process, prefix="conform")
    md = seed_master_data(owner, skus=("WIDGET-A", "WIDGET-B"))
    run = owner.post("/runs", json={"sales_data": [], "lots_data": []}).json()
    count = owner.post(
        "/counts",
        json={
            "bin_id": md.bin_id,
            "counted_at": "2024-07-10T00:00:00Z",
            "lines": [{"sku": "WIDGET-A", "counted_quantity": "5"}],
        },
    ).json()
    at, where = "2024-07-01T00:00:00Z", {"bin_id": md.bin_id, "vendor_id": md.vendor_id}
    with db.unit_of_work(tenant_id) as s:
        ledger_receive(s, tenant_id, lot_id="LOT-A", sku="WIDGET-A", quantity="50", unit_cost="10.25", at=at, **where)
        ledger_receive(s, tenant_id, lot_id="LOT-B", sku="WIDGET-B", quantity="7.5", unit_cost="3.3333", at=at, **where)
        ledger_run(
            s,
            tenant_id,
            "run_conform",
            [("LOT-A", "4", "2024-07-20T10:00:00Z", "S1"), ("LOT-B", "1.25", "2024-07-21T00:00:00Z", "S2")],
        )
        adjustment = ledger_move(
            s, tenant_id, "ADJUSTMENT", lot_id="LOT-A", quantity="-1.5", at="2024-07-22T00:00:00Z", bin_id=md.bin_id
        )
        ledger_reverse(s, tenant_id, adjustment)
    export = owner.post("/exports", json={"report": "valuation"}).json()
    assert owner.get("/reports/stock-on-hand").json()["items"], "the tenant is stocked"
    spare_key = operator(in_process, tenant_id).post("/keys", json={"role": "viewer", "name": "spare"}).json()
    return Tenant(
        tenant_id,
        owner.key,
        path_ids={
            "run_id": ["run_conform", run["run_id"]],
            "job_id": [run["job_id"], count["job_id"], export["job_id"]],
            "export_id": [export["export_id"]],
            "count_id": [count["count_id"]],
            "vendor_id": [md.vendor_id],
            "key_id": [spare_key["id"]],
            "tenant_id": [tenant_id],
            "record_id:categories": [md.category_id],
            "record_id:hubs": [md.hub_id],
            "record_id:bins": [md.bin_id],
            "record_id:vendors": [md.vendor_id],
            "record_id:items": list(md.items.values()),
        },
        body_ids={
            "vendor_id": [md.vendor_id],
            "bin_id": [md.bin_id],
            "default_bin_id": [md.bin_id],
            "hub_id": [md.hub_id],
            "category_id": [md.category_id],
            "sku": list(md.items),
        },
    )


def _exercise(case: Any, tenant: Tenant, key: str, x_tenant_id: str | None) -> None:
    if case.path_parameters:
        tenant.adopt_path(case.path, case.path_parameters)
    if isinstance(case.body, dict | list):
        case.body = tenant.adopt_body(case.body)
    if case.headers:
        case.headers.pop("X-Tenant-ID", None)  # the caller's own, below
    headers = {"Authorization": f"Bearer {key}"} | ({"X-Tenant-ID": x_tenant_id} if x_tenant_id else {})
    # /health answers 503 by design when a dependency is down (here: no worker runs); its body is still checked.
    checks = CONFORMANCE if case.path == "/health" else [not_a_server_error, *CONFORMANCE]
    case.call_and_validate(
        session=ASGIClient(cast(Any, app)), base_url="http://testserver", headers=headers, checks=checks
    )


@OWNER_SCHEMA.parametrize()
def test_owner_answers_conform(case: Any, tenant: Tenant) -> None:
    _exercise(case, tenant, tenant.owner_key, None)


@OPERATOR_SCHEMA.parametrize()
def test_operator_answers_conform(case: Any, tenant: Tenant) -> None:
    _exercise(case, tenant, OPERATOR_KEY, tenant.tenant_id)


def test_both_callers_exist(in_process: str, tenant: Tenant) -> None:
    """The keys the walks use are live: a walk answered only with 401s would prove nothing."""
    assert Api(in_process, tenant.owner_key).get("/runs").status_code == 200
    assert operator(in_process, tenant.tenant_id).get("/runs").status_code == 200
