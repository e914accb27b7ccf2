"""`asora demo`: a sample tenant end to end through the public API, as an integrator would drive it. Its
tables go to stdout, its narration to stderr."""

from __future__ import annotations

import time
from decimal import Decimal
from importlib import resources
from typing import Any

import httpx

from shared.cli.errors import CliError, error_sentence
from shared.cli.output import info, out, print_table, row, table

SAMPLE_SKUS = {"WIDGET-A": "Widget A", "GADGET-B": "Gadget B", "GIZMO-C": "Gizmo C"}


def _call(client: httpx.Client, method: str, path: str, expected: int, **kwargs: Any) -> Any:
    response = client.request(method, path, **kwargs)
    if response.status_code != expected:
        from shared.cli.client import refusal

        failure = refusal(response)
        raise CliError(f"the demo stopped: {method} {path} answered {failure.message}", failure.code, failure.lines)
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
    info(f"tenant {tenant_id} created (plan pro); owner key issued")

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
    info(f"master data seeded: 1 category, 1 hub, 1 bin, 1 vendor, {len(SAMPLE_SKUS)} items")

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
    info(f"run {accepted['run_id']} accepted as job {accepted['job_id']}; waiting for a worker...")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = _call(owner, "GET", f"/jobs/{accepted['job_id']}", 200)
        if job["status"] in ("completed", "failed"):
            break
        time.sleep(0.3)
    run = _call(owner, "GET", f"/runs/{accepted['run_id']}", 200)
    if run["status"] != "completed":
        reason = error_sentence(run["error"]) if run.get("error") else "no error recorded"
        raise CliError(f"the demo run ended {run['status']}: {reason}")

    sales = _call(owner, "GET", f"/runs/{run['run_id']}/sales", 200, params={"limit": 1000})["items"]
    by_sale = table(
        f"COGS by sale, run {run['run_id']}",
        ("sale", "sku", "date", "quantity", "COGS", "unit COGS"),
        ids=("sale", "sku"),
        right=("quantity", "COGS", "unit COGS"),
    )
    for sale in sales:
        unit = (Decimal(sale["cogs"]) / Decimal(sale["quantity"])).quantize(Decimal("0.0001"))
        cells = (sale["sale_id"], sale["sku"], sale["sale_date"][:10], sale["quantity"], sale["cogs"], unit)
        by_sale.add_row(*row(cells))
    print_table(by_sale)
    info(f"run {run['run_id']}: total quantity {run['total_quantity']}, total COGS {run['total_cogs']}")

    by_sku: dict[str, Decimal] = {}
    for sale in sales:
        by_sku[sale["sku"]] = by_sku.get(sale["sku"], Decimal(0)) + Decimal(sale["cogs"])
    widest = max(by_sku.values())
    out().print("COGS by SKU:")
    for sku, amount in sorted(by_sku.items(), key=lambda item: -item[1]):
        bar = "█" * max(1, int(40 * amount / widest))
        out().print(f"  {sku:<10} {bar} {amount.quantize(Decimal('0.01'))}", markup=False)

    entries = _call(owner, "GET", f"/runs/{run['run_id']}/journal-entry", 200, params={"format": "json"})
    journal = table(
        "Journal entry (debit COGS, credit Inventory; cents, half-up)",
        ("date", "debit", "credit", "amount"),
        right=("amount",),
    )
    for entry in entries:
        debit, credit = entry["lines"]
        journal.add_row(
            *row(
                (
                    entry["date"],
                    f"{debit['account_code']} {debit['account_name']}",
                    f"{credit['account_code']} {credit['account_name']}",
                    debit["debit"],
                )
            )
        )
    print_table(journal)
    return dict(run)
