"""`asora`: run the stack, administer tenants and keys, and drive COGS runs from the command line.

Stack and administration commands (`up`, `demo`, `migrate`, `tenants`, `keys`, `runs reap`) talk to the
database directly, as a trusted local administrator. Commands that act for a tenant (`run`, `rollback`,
`list-runs`, `journal-entry`) go through the HTTP API with `ASORA_API_KEY`, so they obey the same
permissions and audit as any integration.
"""

from __future__ import annotations

import json
import secrets
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from shared.cli.client import ApiClient, ProgressReader, console, upload_progress
from shared.cli.ledger import app as ledger_app
from shared.cli.ops import app as ops_app
from shared.cli.services import ensure_services
from shared.config import get_settings

app = typer.Typer(
    help="Asora: inventory ledger and FIFO cost of goods.", no_args_is_help=True, pretty_exceptions_enable=False
)
tenants_app = typer.Typer(help="Tenants (administrator).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (administrator).", no_args_is_help=True)
runs_app = typer.Typer(help="Run maintenance.", no_args_is_help=True)
app.add_typer(tenants_app, name="tenants")
app.add_typer(keys_app, name="keys")
app.add_typer(runs_app, name="runs")
app.add_typer(ops_app, name="ops")
app.add_typer(ledger_app, name="ledger")


@app.command()
def migrate() -> None:
    """Upgrade the database schema to the newest revision."""
    from shared.migrate import upgrade

    urls = ensure_services()
    upgrade(urls.database_url)
    console.print("[green]database is at the newest revision[/green]")


def _start_stack(api_port: int, flower_port: int) -> tuple[Any, Any, str, str]:
    from shared.migrate import upgrade
    from shared.stack import Stack, service_env, wait_http

    settings = get_settings()
    urls = ensure_services()
    upgrade(urls.database_url)
    operator_key = settings.bootstrap_operator_key.get_secret_value() if settings.bootstrap_operator_key else None
    key_file = settings.data_dir / "operator.key"
    if operator_key is None:
        if key_file.exists():
            operator_key = key_file.read_text().strip()
        else:
            operator_key = "asora_" + secrets.token_urlsafe(32)
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            key_file.write_text(operator_key)
            key_file.chmod(0o600)
    flower_auth = settings.flower_basic_auth.get_secret_value() if settings.flower_basic_auth else None
    if flower_auth is None:
        flower_auth = f"admin:{secrets.token_urlsafe(12)}"
    env = service_env(
        urls,
        {
            "ASORA_BOOTSTRAP_OPERATOR_KEY": operator_key,
            "FLOWER_BASIC_AUTH": flower_auth,
            "FLOWER_UNAUTHENTICATED_API": "false",
        },
    )
    stack = Stack(env=env, log_dir=settings.data_dir / "logs")
    stack.start_api(api_port)
    stack.start_worker()
    stack.start_relay()
    stack.start_flower(flower_port)
    if not wait_http(f"http://127.0.0.1:{api_port}/health", timeout=90):
        stack.stop_all()
        console.print(f"[red]the stack did not become healthy; see {settings.data_dir / 'logs'}[/red]")
        raise typer.Exit(1)
    return stack, urls, operator_key, flower_auth


def _stop_stack(stack: Any, urls: Any) -> None:
    from shared.embedded import stop_embedded

    stack.stop_all()
    if urls.embedded_database or urls.embedded_redis:
        stop_embedded(get_settings().data_dir)


@app.command()
def up(api_port: int = 8000, flower_port: int = 5555) -> None:
    """Run everything in the foreground (embedded PostgreSQL and Redis unless URLs are configured)."""
    stack, urls, operator_key, flower_auth = _start_stack(api_port, flower_port)
    console.print(f"API     http://127.0.0.1:{api_port}  (docs at /docs)")
    console.print(f"Flower  http://127.0.0.1:{flower_port}  (user {flower_auth.split(':')[0]})")
    console.print(f"Operator key in {get_settings().data_dir / 'operator.key'}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        while not stop.wait(1):
            if dead := stack.dead():
                console.print(f"[red]{', '.join(dead)} exited; stopping[/red]")
                break
    finally:
        console.print("stopping...")
        _stop_stack(stack, urls)
    _ = operator_key


@app.command()
def demo(api_port: int = 8000, flower_port: int = 5555) -> None:
    """Start everything, run a sample tenant end to end, print the result, stop."""
    from shared.cli.demo import run_demo

    stack, urls, operator_key, flower_auth = _start_stack(api_port, flower_port)
    try:
        run_demo(f"http://127.0.0.1:{api_port}", operator_key)
        console.print(
            f"API was at http://127.0.0.1:{api_port}, Flower at http://127.0.0.1:{flower_port} "
            f"(user {flower_auth.split(':')[0]})"
        )
    finally:
        console.print("stopping everything the demo started...")
        _stop_stack(stack, urls)


@app.command()
def down() -> None:
    """Stop the embedded PostgreSQL and Redis left running under the data directory (by `migrate` etc.)."""
    from shared.embedded import stop_embedded

    stopped = stop_embedded(get_settings().data_dir)
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@tenants_app.command("create")
def tenants_create(
    tenant_id: str,
    name: Annotated[str, typer.Option()] = "",
    plan: Annotated[str, typer.Option()] = "free",
    role_model: Annotated[str, typer.Option("--role-model")] = "standard",
) -> None:
    """Create a tenant with its plan and role model."""
    from shared import db
    from shared.auth import LOCAL_ADMIN
    from shared.errors import DomainError
    from shared.tenants import service as tenants

    ensure_services()
    try:
        with db.unit_of_work() as session:
            tenants.create_tenant(
                session,
                tenant_id=tenant_id,
                name=name or tenant_id,
                plan=plan,
                role_model=role_model,
                actor=LOCAL_ADMIN,
            )
    except DomainError as exc:
        console.print(f"[red]{exc.code} {exc.reason}: {exc.message}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"[green]tenant {tenant_id} created (plan {plan}, role model {role_model})[/green]")


@tenants_app.command("verify")
def tenants_verify(tenant_id: str) -> None:
    """Post-onboarding verification: items exist, receipts produced ledger events, stock reconciles."""
    from shared.cli.tenants_verify import verify

    ensure_services()
    if not verify(tenant_id):
        raise typer.Exit(1)


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option()],
    tenant_id: Annotated[str | None, typer.Option("--tenant-id")] = None,
    name: Annotated[str, typer.Option()] = "cli",
) -> None:
    """Create an API key (operator keys have no tenant). The key is printed once."""
    from shared import db
    from shared.auth import LOCAL_ADMIN
    from shared.errors import DomainError
    from shared.tenants import service as tenants

    ensure_services()
    try:
        with db.unit_of_work(tenant_id or db.SYSTEM_SCOPE) as session:
            key, raw = tenants.create_key(session, tenant_id=tenant_id, role=role, name=name, actor=LOCAL_ADMIN)
    except DomainError as exc:
        console.print(f"[red]{exc.code} {exc.reason}: {exc.message}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"key id {key.id}; the key is shown only now:")
    typer.echo(raw)


@app.command()
def run(
    tenant_id: Annotated[str, typer.Option("--tenant-id")],
    sales_file: Annotated[Path, typer.Option("--sales-file", exists=True, dir_okay=False)],
    lots_file: Annotated[Path | None, typer.Option("--lots-file", exists=True, dir_okay=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
    mode: Annotated[str, typer.Option("--mode")] = "fifo",
    wait: Annotated[bool, typer.Option("--wait")] = False,
) -> None:
    """Submit a COGS run from CSV files (through the API)."""
    client = ApiClient(tenant_id)
    total = sales_file.stat().st_size + (lots_file.stat().st_size if lots_file else 0)
    with upload_progress() as progress:
        task = progress.add_task("uploading", total=total)
        files: dict[str, Any] = {
            "sales_file": (sales_file.name, ProgressReader(sales_file, progress, task), "text/csv")
        }
        if lots_file:
            files["lots_file"] = (lots_file.name, ProgressReader(lots_file, progress, task), "text/csv")
        data = {"tenant_id": tenant_id, "mode": mode, "dry_run": "true" if dry_run else "false"}
        accepted = client.json("POST", "/runs", files=files, data=data)
    console.print(f"run {accepted['run_id']} accepted (job {accepted['job_id']})")
    typer.echo(accepted["run_id"])
    if wait:
        client.wait_job(accepted["job_id"], "running")
        _print_run(client.json("GET", f"/runs/{accepted['run_id']}"))
        result = client.json("GET", f"/runs/{accepted['run_id']}")
        if result["status"] == "failed":
            raise typer.Exit(1)


def _print_run(run_out: dict[str, Any]) -> None:
    table = Table(title=f"run {run_out['run_id']}")
    for column in (
        "status",
        "dry_run",
        "sales_count",
        "lots_count",
        "total_quantity",
        "total_cogs",
        "validation_errors_count",
    ):
        table.add_column(column)
    table.add_row(
        *(
            str(run_out[c])
            for c in (
                "status",
                "dry_run",
                "sales_count",
                "lots_count",
                "total_quantity",
                "total_cogs",
                "validation_errors_count",
            )
        )
    )
    console.print(table)
    if run_out.get("error"):
        console.print(f"[red]{run_out['error']['reason']}: {run_out['error']['message']}[/red]")


@app.command()
def rollback(
    run_id: str,
    confirm: Annotated[bool, typer.Option("--confirm")] = False,
    cascade: Annotated[bool, typer.Option("--cascade")] = False,
    tenant_id: Annotated[str | None, typer.Option("--tenant-id")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait")] = True,
) -> None:
    """Roll back a completed run (and, with --cascade, the later runs that block it)."""
    if not confirm:
        console.print("[red]refusing without --confirm: a rollback appends reversing ledger events[/red]")
        raise typer.Exit(2)
    client = ApiClient(tenant_id)
    accepted = client.json("POST", f"/runs/{run_id}/rollback", params={"cascade": str(cascade).lower()})
    console.print(f"rollback of {run_id} accepted (job {accepted['job_id']})")
    if wait:
        job = client.wait_job(accepted["job_id"], "rolling back")
        if job["status"] == "failed":
            console.print(f"[red]rollback failed: {job['error']}[/red]")
            raise typer.Exit(1)
        console.print(
            f"[green]rolled back: {', '.join(job.get('result', {}).get('rolled_back', [run_id]))}[/green]"
            if job.get("result")
            else "[green]rolled back[/green]"
        )


@app.command("list-runs")
def list_runs(
    tenant_id: Annotated[str, typer.Option("--tenant-id")],
    status: Annotated[str | None, typer.Option("--status")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List a tenant's recent runs."""
    client = ApiClient(tenant_id)
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    page = client.json("GET", "/runs", params=params)
    if as_json:
        typer.echo(json.dumps(page["items"], indent=2))
        return
    table = Table(title=f"runs of {tenant_id}")
    for column in ("run_id", "status", "dry_run", "sales", "total_cogs", "created_at", "rolled_back_by"):
        table.add_column(column)
    for r in page["items"]:
        table.add_row(
            r["run_id"],
            r["status"],
            str(r["dry_run"]),
            str(r["sales_count"]),
            r["total_cogs"],
            r["created_at"],
            r["rolled_back_by"] or "",
        )
    console.print(table)


@app.command("journal-entry")
def journal_entry(
    run_id: str,
    format: Annotated[str, typer.Option("--format")] = "csv",
    output_file: Annotated[Path, typer.Option("--output-file")] = Path("journal.csv"),
    tenant_id: Annotated[str | None, typer.Option("--tenant-id")] = None,
    group_by: Annotated[str, typer.Option("--group-by")] = "date",
) -> None:
    """Write a run's journal entry (csv, json, iif or xero) to a file."""
    client = ApiClient(tenant_id)
    response = client.request("GET", f"/runs/{run_id}/journal-entry", params={"format": format, "group_by": group_by})
    output_file.write_bytes(response.content)
    console.print(f"[green]wrote {output_file} ({len(response.content)} bytes)[/green]")


@runs_app.command("reap")
def runs_reap(stale_after: Annotated[int | None, typer.Option("--stale-after")] = None) -> None:
    """Re-queue (or fail, past the attempt cap) jobs whose worker stopped heartbeating."""
    from shared import registry
    from shared.jobs import runner

    ensure_services()
    outcomes = runner.reap_stale_jobs(get_settings(), registry.TABLE, stale_after)
    for outcome in outcomes:
        console.print(f"{outcome['action']}: job {outcome['job_id']} of {outcome['tenant_id']}")
    console.print(f"{len(outcomes)} job(s) reaped")


if __name__ == "__main__":
    app()
