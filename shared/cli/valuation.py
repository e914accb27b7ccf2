"""`asora valuation`: the tenant's default costing method and the method each SKU is held to, through the API
(docs/costing.md). Switching a SKU is audited; one that revalues stock on hand does so only with --revalue."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shared.cli.choices import CostingMode
from shared.cli.client import DEFAULT_TIMEOUT, ApiClient, raise_if_failed
from shared.cli.output import info, print_json, print_table, row, success, table
from shared.cli.runs import JsonOption, TenantOption, TimeoutOption

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
    revalue: Annotated[
        bool,
        typer.Option(
            "--revalue",
            help="Post the revaluation a switch away from moving average needs (a ledger write: a revaluation job).",
        ),
    ] = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="With --revalue: wait for the job to finish.")] = True,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
) -> None:
    """Switch a SKU to another costing method (audited). A moving-average SKU whose pool holds value beyond its
    lots' own costs is refused (409 REVALUATION_REQUIRED) unless --revalue asks for the revaluation; it is then
    posted by a job in the tenant's ledger order, and the switch happens with it."""
    client = ApiClient(tenant_id)
    response = client.request(
        "PUT", f"/valuation-methods/{sku}", json=_body(tenant_id, method=method.value, revalue=revalue)
    )
    answer = response.json()
    if response.status_code != 202:
        success(f"SKU {answer['sku']}: {answer['previous_method'] or 'not costed'} -> {answer['method']}")
        return
    info(f"revaluation of SKU {sku} accepted (job {answer['job_id']}; carried value {answer['carried_value']})")
    if not wait:
        return
    job = client.wait_job(answer["job_id"], "revaluing", timeout, hint=f"see `asora valuation show`; SKU {sku}")
    raise_if_failed(job, "the revaluation failed")
    success(
        f"SKU {sku}: {answer['previous_method']} -> {answer['method']}, revalued (journal entry: "
        f"`GET /revaluations/{answer['job_id']}/journal-entry`)"
    )
