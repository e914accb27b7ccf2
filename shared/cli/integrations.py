"""`asora integrations`: an operator's manual dispatch of a tenant's integration, and a look at its outbox,
through the HTTP API with ASORA_API_KEY (an operator key with --tenant-id, or an owner's or manager's key)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shared.cli.client import DEFAULT_TIMEOUT, ApiClient, raise_if_failed
from shared.cli.output import info, print_json, print_table, row, success, table
from shared.cli.runs import JsonOption, TenantOption, TimeoutOption

app = typer.Typer(help="Integrations: dispatch queued payloads, see the outbox.", no_args_is_help=True)

IntegrationArgument = Annotated[str, typer.Argument(help="The integration's id (int_...).")]


@app.command("dispatch")
def dispatch(
    integration_id: IntegrationArgument,
    tenant_id: TenantOption = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the dispatch to finish and print its outcome.")
    ] = False,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    as_json: JsonOption = False,
) -> None:
    """Deliver the integration's queued payloads, in order, now. Nothing is ever sent by itself, and nothing is
    retried: a dispatch stops at the first payload that is not delivered (exit code 1 with --wait)."""
    client = ApiClient(tenant_id)
    accepted: dict[str, Any] = client.json("POST", f"/integrations/{integration_id}/dispatch")
    info(f"dispatch of {integration_id} accepted (job {accepted['job_id']})")
    if not wait:
        if as_json:
            print_json(accepted)
        else:
            typer.echo(accepted["job_id"])
        return
    job = client.wait_job(
        accepted["job_id"], "dispatching", timeout, hint=f"see `asora integrations outbox {integration_id}`"
    )
    history = client.json("GET", f"/integrations/{integration_id}/dispatches", params={"limit": 1})["items"]
    outcome: dict[str, Any] = next((d for d in history if d["dispatch_id"] == accepted["dispatch_id"]), {})
    if as_json:
        print_json({**accepted, "status": job["status"], "dispatch": outcome, "error": job.get("error")})
    else:
        shown = table("dispatch", ("field", "value"), ids=("value",))
        for field in ("dispatch_id", "status", "sent", "delivered", "stopped_at_event_id", "outcome"):
            shown.add_row(*row((field, outcome.get(field))))
        print_table(shown)
    raise_if_failed(job, "the dispatch stopped")
    success(f"delivered {outcome.get('delivered', 0)} payload(s)")


@app.command("outbox")
def outbox(
    integration_id: IntegrationArgument,
    tenant_id: TenantOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="At most this many, in queue order.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """The integration's payloads in the order they were queued, with their delivery status."""
    client = ApiClient(tenant_id)
    page = client.json("GET", f"/integrations/{integration_id}/outbox", params={"limit": limit})
    if as_json:
        print_json(page["items"])
        return
    listed = table(
        f"outbox of {integration_id}",
        ("position", "event_id", "type", "status", "sends", "response_status", "error"),
        ids=("event_id",),
        right=("position", "sends"),
    )
    for e in page["items"]:
        listed.add_row(
            *row((e["position"], e["event_id"], e["type"], e["status"], e["sends"], e["response_status"], e["error"]))
        )
    print_table(listed)
