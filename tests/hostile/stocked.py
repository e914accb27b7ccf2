"""A tenant stocked for walking the schema: master data through the API; receipts, a costed run, an adjustment
and its reversal through the ledger factories, so reports, the ledger and a run's results answer with rows.
About half of the generated ids, in paths and in bodies, are replaced by ids that exist (`adopt_path`,
`adopt_body`), so requests get past the lookups into the services. The choice is decided by the generated
value itself, so a seeded walk stays deterministic."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from shared import db
from tests.support import (
    ledger_move,
    ledger_receive,
    ledger_reverse,
    ledger_run,
    make_tenant,
    operator,
    seed_master_data,
)

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


def stock_tenant(base: str, prefix: str) -> Tenant:
    """A new tenant with master data, stock, a run, a count and an export, and an owner key for it."""
    tenant_id, owner = make_tenant(base, prefix=prefix)
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
    run_id = f"run_{prefix}_{tenant_id[-8:]}"
    with db.unit_of_work(tenant_id) as s:
        ledger_receive(s, tenant_id, lot_id="LOT-A", sku="WIDGET-A", quantity="50", unit_cost="10.25", at=at, **where)
        ledger_receive(s, tenant_id, lot_id="LOT-B", sku="WIDGET-B", quantity="7.5", unit_cost="3.3333", at=at, **where)
        ledger_run(
            s,
            tenant_id,
            run_id,
            [("LOT-A", "4", "2024-07-20T10:00:00Z", "S1"), ("LOT-B", "1.25", "2024-07-21T00:00:00Z", "S2")],
        )
        adjustment = ledger_move(
            s, tenant_id, "ADJUSTMENT", lot_id="LOT-A", quantity="-1.5", at="2024-07-22T00:00:00Z", bin_id=md.bin_id
        )
        ledger_reverse(s, tenant_id, adjustment)
    export = owner.post("/exports", json={"report": "valuation"}).json()
    assert owner.get("/reports/stock-on-hand").json()["items"], "the tenant is stocked"
    spare_key = operator(base, tenant_id).post("/keys", json={"role": "viewer", "name": "spare"}).json()
    return Tenant(
        tenant_id,
        owner.key,
        path_ids={
            "run_id": [run_id, run["run_id"]],
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
