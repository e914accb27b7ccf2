"""The COGS-run commands, through the HTTP API with ASORA_API_KEY: `run`, `rollback`, `list-runs` and
`journal-entry`. They obey the same permissions and audit as any integration.

A run's outcome is a table on stdout (the run id first, so `$(asora run ...)` captures it); a failed run's
validation errors follow as a second table, the first VALIDATION_ERRORS_SHOWN of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from shared.cli.choices import CostingMode, JournalFormat, JournalGrouping, RunStatus
from shared.cli.client import DEFAULT_TIMEOUT, ApiClient, ProgressReader, raise_if_failed
from shared.cli.errors import CliError, ExitCode, error_lines, error_sentence
from shared.cli.output import info, is_stdout, print_json, print_table, progress, row, success, table, warn

VALIDATION_ERRORS_SHOWN = 20

TenantOption = Annotated[
    str | None,
    typer.Option(
        "--tenant-id",
        help="The tenant to act on: needed with an operator key; a tenant key always acts for its own tenant.",
    ),
]
TimeoutOption = Annotated[
    float,
    typer.Option(
        "--timeout", min=0, help="With --wait: seconds to wait before giving up (exit code 4; the job goes on)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout instead of a table.")]


def run(
    tenant_id: Annotated[str, typer.Option("--tenant-id", help="The tenant whose run this is.")],
    sales_file: Annotated[
        Path, typer.Option("--sales-file", exists=True, dir_okay=False, help="Sales CSV (see shared/samples/).")
    ],
    lots_file: Annotated[
        Path | None,
        typer.Option("--lots-file", exists=True, dir_okay=False, help="Lots CSV, received into the ledger by the run."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and compute only; write nothing (status 'validated').")
    ] = False,
    mode: Annotated[
        CostingMode | None, typer.Option("--mode", help="Costing method (default: the tenant's default method).")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the run to finish and print its outcome.")] = False,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    as_json: JsonOption = False,
) -> None:
    """Submit a COGS run from CSV files. Prints the run id; with --wait, the outcome (exit code 1 if it failed)."""
    client = ApiClient(tenant_id)
    total = sales_file.stat().st_size + (lots_file.stat().st_size if lots_file else 0)
    with progress(bytes_total=True) as bar:
        task = bar.add_task("uploading", total=total)
        files: dict[str, Any] = {"sales_file": (sales_file.name, ProgressReader(sales_file, bar, task), "text/csv")}
        if lots_file:
            files["lots_file"] = (lots_file.name, ProgressReader(lots_file, bar, task), "text/csv")
        data = {"tenant_id": tenant_id, "dry_run": "true" if dry_run else "false"}
        if mode is not None:
            data["mode"] = mode.value
        accepted = client.json("POST", "/runs", files=files, data=data)
    info(f"run {accepted['run_id']} accepted (job {accepted['job_id']})")
    if not wait:
        if as_json:
            print_json(accepted)
        else:
            typer.echo(accepted["run_id"])
        return
    if not as_json:
        typer.echo(accepted["run_id"])
    client.wait_job(accepted["job_id"], "running", timeout, hint=f"see `asora list-runs --tenant-id {tenant_id}`")
    outcome: dict[str, Any] = client.json("GET", f"/runs/{accepted['run_id']}")
    errors = _validation_errors(client, outcome) if outcome["status"] == "failed" else []
    if as_json:
        print_json({**outcome, "validation_errors": errors})
    else:
        _print_run(outcome, errors)
    if outcome["status"] == "failed":
        raise typer.Exit(ExitCode.FAILED)


def _validation_errors(client: ApiClient, outcome: dict[str, Any]) -> list[dict[str, Any]]:
    if not outcome.get("validation_errors_count"):
        return []
    page = client.json("GET", f"/runs/{outcome['run_id']}/validation-errors", params={"limit": VALIDATION_ERRORS_SHOWN})
    return list(page["items"])


def _print_run(outcome: dict[str, Any], errors: list[dict[str, Any]]) -> None:
    summary = table("run", ("field", "value"), ids=("value",))
    for label, key in (
        ("run_id", "run_id"),
        ("status", "status"),
        ("mode", "mode"),
        ("dry_run", "dry_run"),
        ("sales", "sales_count"),
        ("lots", "lots_count"),
        ("total_quantity", "total_quantity"),
        ("total_cogs", "total_cogs"),
        ("validation_errors", "validation_errors_count"),
    ):
        summary.add_row(*row((label, outcome[key])))
    print_table(summary)
    if outcome.get("error"):
        warn(f"the run failed: {error_sentence(outcome['error'])}")
        if not errors:
            for line in error_lines(outcome["error"]):
                warn(f"  {line}")
    if errors:
        listed = table("validation errors", ("row", "field", "reason", "message", "file"), right=("row",))
        for e in errors:
            listed.add_row(*row((e["row"], e["field"], e["reason"], e["message"], e["file"])))
        print_table(listed)
        more = int(outcome["validation_errors_count"]) - len(errors)
        if more > 0:
            warn(
                f"... and {more} more validation error(s); all of them: "
                f"GET /api/v1/runs/{outcome['run_id']}/validation-errors"
            )


def rollback(
    run_id: Annotated[str, typer.Argument(help="The run to roll back.")],
    confirm: Annotated[
        bool, typer.Option("--confirm", help="Required: a rollback appends reversing events to the ledger.")
    ] = False,
    cascade: Annotated[
        bool, typer.Option("--cascade", help="Also roll back the later runs that block this one, newest first.")
    ] = False,
    tenant_id: TenantOption = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the rollback job to finish.")] = True,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
) -> None:
    """Roll back a completed run (and, with --cascade, the later runs that block it)."""
    if not confirm:
        raise CliError("refusing without --confirm: a rollback appends reversing ledger events", ExitCode.USAGE)
    client = ApiClient(tenant_id)
    accepted = client.json("POST", f"/runs/{run_id}/rollback", params={"cascade": str(cascade).lower()})
    info(f"rollback of {run_id} accepted (job {accepted['job_id']})")
    if not wait:
        return
    job = client.wait_job(accepted["job_id"], "rolling back", timeout, hint=f"see `asora list-runs`; run {run_id}")
    raise_if_failed(job, "the rollback failed")
    rolled_back = (job.get("result") or {}).get("rolled_back") or [run_id]
    success(f"rolled back: {', '.join(rolled_back)}")


def list_runs(
    tenant_id: Annotated[str, typer.Option("--tenant-id", help="The tenant whose runs to list.")],
    status: Annotated[RunStatus | None, typer.Option("--status", help="Only runs in this status.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="At most this many, newest first.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """List a tenant's recent runs."""
    client = ApiClient(tenant_id)
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status.value
    page = client.json("GET", "/runs", params=params)
    if as_json:
        print_json(page["items"])
        return
    columns = ("run_id", "status", "dry_run", "sales", "total_cogs", "created_at", "rolled_back_by")
    listed = table(f"runs of {tenant_id}", columns, ids=("run_id", "created_at", "rolled_back_by"))
    for r in page["items"]:
        listed.add_row(
            *row(
                (
                    r["run_id"],
                    r["status"],
                    r["dry_run"],
                    r["sales_count"],
                    r["total_cogs"],
                    r["created_at"],
                    r["rolled_back_by"],
                )
            )
        )
    print_table(listed)
    if page.get("next_cursor"):
        info(f"more runs exist: raise --limit (now {limit})")


def journal_entry(
    run_id: Annotated[str, typer.Argument(help="The run whose journal entry to write.")],
    format: Annotated[JournalFormat, typer.Option("--format", help="File format.")] = JournalFormat.CSV,
    output_file: Annotated[
        Path | None,
        typer.Option(
            "--output-file",
            dir_okay=False,
            allow_dash=True,
            help="Where to write it; '-' for stdout. Default: the API's file name, in the current directory.",
        ),
    ] = None,
    tenant_id: TenantOption = None,
    group_by: Annotated[
        JournalGrouping, typer.Option("--group-by", help="One debit/credit pair per sale date, or per sale.")
    ] = JournalGrouping.DATE,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print what was written (file, bytes, sha256) as JSON on stdout.")
    ] = False,
) -> None:
    """Write a run's journal entry (csv, json, iif or xero) to a file or stdout."""
    if as_json and is_stdout(output_file):
        raise CliError("--json and --output-file - would both write to stdout; choose one", ExitCode.USAGE)
    client = ApiClient(tenant_id)
    params = {"format": format.value, "group_by": group_by.value}
    written, filename = client.download(f"/runs/{run_id}/journal-entry", output_file, params=params)
    success(f"wrote {written.target} ({written.size} bytes, sha256 {written.sha256})")
    if as_json:
        print_json({**written.as_dict(), "filename": filename, "format": format.value, "run_id": run_id})
