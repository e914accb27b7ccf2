"""`asora valuation`: the tenant's default costing method and the method each SKU is held to, through the API
(docs/costing.md). Switching a SKU is an audited operation that never revalues stock on hand."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shared.cli.choices import CostingMode
from shared.cli.client import ApiClient
from shared.cli.output import print_json, print_table, row, success, table
from shared.cli.runs import JsonOption, TenantOption

app = typer.Typer(help="Costing methods: the tenant's default and each SKU's, through the API.", no_args_is_help=True)


def _body(tenant_id: str | None, **values: Any) -> dict[str, Any]:
    return {**values, **({"tenant_id": tenant_id} if tenant_id else {})}


@app.command("show")
def show(tenant_id: TenantOption = None, as_json: JsonOption = False) -> None:
    """Print the tenant's default method and every SKU's method."""
    client = ApiClient(tenant_id)
    settings = client.json("GET", "/settings/valuation")
    skus: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = client.json(
            "GET", "/valuation-methods", params={"limit": 1000, **({"cursor": cursor} if cursor else {})}
        )
        skus += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    if as_json:
        print_json({**settings, "skus": skus})
        return
    typer.echo(f"default method: {settings['default_method']}")
    listing = table("SKU methods", ("sku", "method", "updated_at"), ids=("sku",))
    for item in skus:
        listing.add_row(*row((item["sku"], item["method"], item["updated_at"])))
    print_table(listing)


@app.command("set-default")
def set_default(
    method: Annotated[CostingMode, typer.Argument(help="The method of runs that name none.")],
    tenant_id: TenantOption = None,
) -> None:
    """Set the tenant's default costing method (audited); runs already accepted keep theirs."""
    answer = ApiClient(tenant_id).json("PUT", "/settings/valuation", json=_body(tenant_id, default_method=method.value))
    success(f"default method: {answer['default_method']}")


@app.command("switch")
def switch(
    sku: Annotated[str, typer.Argument(help="The SKU to switch.")],
    method: Annotated[CostingMode, typer.Argument(help="The method to hold it to from now on.")],
    tenant_id: TenantOption = None,
) -> None:
    """Switch a SKU to another costing method (audited). Refused (409 REVALUATION_REQUIRED) when it would revalue
    stock on hand: a moving-average SKU whose pool holds value beyond its lots' own costs."""
    answer = ApiClient(tenant_id).json("PUT", f"/valuation-methods/{sku}", json=_body(tenant_id, method=method.value))
    success(f"SKU {answer['sku']}: {answer['previous_method'] or 'not costed'} -> {answer['method']}")
