"""`asora demo`: a sample tenant end to end through the public API, as an integrator would drive it."""

from __future__ import annotations

import time
from decimal import Decimal
from importlib import resources
from typing import Any

import httpx
from rich.table import Table

from shared.cli.client import console

SAMPLE_SKUS = {"WIDGET-A": "Widget A", "GADGET-B": "Gadget B", "GIZMO-C": "Gizmo C"}


def _call(client: httpx.Client, method: str, path: str, expected: int, **kwargs: Any) -> Any:
    response = client.request(method, path, **kwargs)
    if response.status_code != expected:
        raise RuntimeError(f"{method} {path} answered {response.status_code}: {response.text[:500]}")
    return response.json() if response.content else None


def run_demo(api: str, operator_key: str) -> dict[str, Any]:
    tenant_id = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    base = f"{api}/api/v1"
    operator = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {operator_key}"}, timeout=60)
    _call(
        operator,
        "POST",
        "/tenants",
        201,
        json={"tenant_id": tenant_id, "name": "Demo Trading Co", "plan": "pro", "role_model": "standard"},
    )
    key = _call(
        operator, "POST", "/keys", 201, headers={"X-Tenant-ID": tenant_id}, json={"role": "owner", "name": "demo owner"}
    )
    owner = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key['key']}"}, timeout=60)
    console.print(f"tenant [bold]{tenant_id}[/bold] created (plan pro); owner key issued")

    # Onboarding order: categories, hubs, bins, vendors, items.
    category = _call(owner, "POST", "/categories", 201, json={"name": "Finished goods"})
    hub = _call(owner, "POST", "/hubs", 201, json={"name": "Main warehouse"})
    bin_ = _call(owner, "POST", "/bins", 201, json={"hub_id": hub["id"], "name": "A-01"})
    _call(owner, "POST", "/vendors", 201, json={"name": "Acme Supply"})
    for sku, name in SAMPLE_SKUS.items():
        _call(
            owner,
            "POST",
            "/items",
            201,
            json={"sku": sku, "name": name, "category_id": category["id"], "default_bin_id": bin_["id"]},
        )
    console.print(f"master data seeded: 1 category, 1 hub, 1 bin, 1 vendor, {len(SAMPLE_SKUS)} items")

    samples = resources.files("shared") / "samples"
    files = {
        "sales_file": ("sales.csv", (samples / "sales.csv").read_bytes(), "text/csv"),
        "lots_file": ("lots.csv", (samples / "lots.csv").read_bytes(), "text/csv"),
    }
    accepted = _call(
        owner,
        "POST",
        "/runs",
        202,
        files=files,
        data={"dry_run": "false"},
        headers={"Idempotency-Key": f"{tenant_id}-first-run"},
    )
    console.print(f"run {accepted['run_id']} accepted as job {accepted['job_id']}; waiting for a worker...")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = _call(owner, "GET", f"/jobs/{accepted['job_id']}", 200)
        if job["status"] in ("completed", "failed"):
            break
        time.sleep(0.3)
    run = _call(owner, "GET", f"/runs/{accepted['run_id']}", 200)
    if run["status"] != "completed":
        raise RuntimeError(f"the demo run ended {run['status']}: {run['error']}")

    sales = _call(owner, "GET", f"/runs/{run['run_id']}/sales", 200, params={"limit": 1000})["items"]
    table = Table(title=f"COGS by sale — run {run['run_id']}")
    for column in ("sale", "sku", "date", "quantity", "COGS", "unit COGS"):
        table.add_column(column, justify="right" if column in ("quantity", "COGS", "unit COGS") else "left")
    for sale in sales:
        unit = (Decimal(sale["cogs"]) / Decimal(sale["quantity"])).quantize(Decimal("0.0001"))
        table.add_row(sale["sale_id"], sale["sku"], sale["sale_date"][:10], sale["quantity"], sale["cogs"], str(unit))
    console.print(table)
    console.print(f"total quantity {run['total_quantity']}, total COGS [bold]{run['total_cogs']}[/bold]")

    by_sku: dict[str, Decimal] = {}
    for sale in sales:
        by_sku[sale["sku"]] = by_sku.get(sale["sku"], Decimal(0)) + Decimal(sale["cogs"])
    widest = max(by_sku.values())
    console.print("COGS by SKU:")
    for sku, amount in sorted(by_sku.items(), key=lambda item: -item[1]):
        bar = "█" * max(1, int(40 * amount / widest))
        console.print(f"  {sku:<10} {bar} {amount.quantize(Decimal('0.01'))}")

    entries = _call(owner, "GET", f"/runs/{run['run_id']}/journal-entry", 200, params={"format": "json"})
    journal = Table(title="Journal entry (debit COGS, credit Inventory; cents, half-up)")
    for column in ("date", "debit", "credit", "amount"):
        journal.add_column(column, justify="right" if column == "amount" else "left")
    for entry in entries:
        debit, credit = entry["lines"]
        journal.add_row(
            entry["date"],
            f"{debit['account_code']} {debit['account_name']}",
            f"{credit['account_code']} {credit['account_name']}",
            debit["debit"],
        )
    console.print(journal)
    return dict(run)
