"""`asora items add`: the master data a first run needs (a category and an item per SKU), through the API, so a
newcomer can go from a new tenant to a COGS run without writing HTTP calls. Idempotent: an existing category
of that name is reused and existing SKUs are left as they are."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated, Any

import typer

from shared.cli.client import ApiClient
from shared.cli.errors import CliError, ExitCode
from shared.cli.output import info, print_table, row, success, table
from shared.cli.runs import TenantOption

app = typer.Typer(help="Items (master data), through the API.", no_args_is_help=True)


def _skus_of(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if "sku" not in (reader.fieldnames or []):
            raise CliError(f"{path} has no 'sku' column", ExitCode.USAGE)
        return [r["sku"].strip() for r in reader if (r.get("sku") or "").strip()]


def _category_id(client: ApiClient, name: str) -> str:
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = client.json("GET", "/categories", params=params)
        for category in page["items"]:
            if category["name"] == name:
                return str(category["id"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    created = client.json("POST", "/categories", json={"name": name})
    info(f"category '{name}' created ({created['id']})")
    return str(created["id"])


@app.command("add")
def add(
    skus: Annotated[list[str] | None, typer.Argument(help="SKUs to create as items (item name = SKU).")] = None,
    from_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--from-file", exists=True, dir_okay=False, help="Also every SKU in this CSV's 'sku' column; repeatable."
        ),
    ] = None,
    category: Annotated[str, typer.Option(help="The items' category, created when missing.")] = "general",
    tenant_id: TenantOption = None,
) -> None:
    """Create items for SKUs (and their category), skipping SKUs that exist already."""
    wanted = list(dict.fromkeys([*(skus or []), *(s for path in from_file or [] for s in _skus_of(path))]))
    if not wanted:
        raise CliError("name at least one SKU, or --from-file with a 'sku' column", ExitCode.USAGE)
    client = ApiClient(tenant_id)
    category_id = _category_id(client, category)
    shown = table("items", ("sku", "item_id", "outcome"), ids=("sku", "item_id"))
    for sku in wanted:
        existing = client.json("GET", "/items", params={"sku": sku, "limit": 1})["items"]
        if existing:
            shown.add_row(*row((sku, existing[0]["id"], "exists")))
            continue
        item = client.json("POST", "/items", json={"sku": sku, "name": sku, "category_id": category_id})
        shown.add_row(*row((sku, item["id"], "created")))
    print_table(shown)
    success(f"{len(wanted)} SKU(s) ready in category '{category}'")
