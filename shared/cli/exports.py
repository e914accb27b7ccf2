"""`asora export REPORT`: request a report export through the API, wait for its job, download the file and
check it against the sha256 the API recorded; and `status`, `list` and `download` for exports made before.

Each report is a subcommand of its own, so `asora export --help` lists the reports and each one's help
names the parameters it takes. (No `from __future__ import annotations` here: typer reads each report
command's annotations, which name the report, from the function that makes the command.)
"""

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from shared.cli.choices import Report
from shared.cli.client import DEFAULT_TIMEOUT, ApiClient, raise_if_failed
from shared.cli.errors import CliError, ExitCode
from shared.cli.output import Written, info, is_stdout, print_json, print_table, row, success, table
from shared.cli.runs import JsonOption, TenantOption, TimeoutOption
from shared.reports.schemas import TIME_PARAMS

app = typer.Typer(
    help="Report exports: request one (a subcommand per report), or look at and download exports made before.",
    no_args_is_help=True,
)

OutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output-file",
        dir_okay=False,
        allow_dash=True,
        help="Where to write the CSV; '-' for stdout. Default: the export's own file name, in the current directory.",
    ),
]


def _parse_params(values: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"'{value}' is not KEY=VALUE", param_hint="'--param'")
        params[key.strip()] = text.strip()
    return params


def _download(client: ApiClient, export: dict[str, Any], output_file: Path | None, as_json: bool) -> Written:
    written, _ = client.download(f"/exports/{export['export_id']}/download", output_file)
    if export.get("sha256") and written.sha256 != export["sha256"]:
        raise CliError(
            f"the downloaded file's sha256 {written.sha256} differs from the export's {export['sha256']}; "
            f"{written.target} should not be trusted"
        )
    named = "" if Path(written.target).name == export["filename"] else f"{export['filename']}, "
    success(
        f"wrote {written.target} ({named}{export.get('row_count')} rows, {written.size} bytes, sha256 {written.sha256})"
    )
    if as_json:
        print_json({**export, "written": written.as_dict()})
    return written


def request_export(
    report: Report,
    params: list[str],
    wait: bool,
    output_file: Path | None,
    tenant_id: str | None,
    timeout: float,
    as_json: bool,
) -> None:
    if as_json and is_stdout(output_file):
        raise CliError("--json and --output-file - would both write to stdout; choose one", ExitCode.USAGE)
    body = {"report": report.value, "params": _parse_params(params)}
    client = ApiClient(tenant_id)
    accepted = client.json("POST", "/exports", json=body)
    export_id = accepted["export_id"]
    info(f"export {export_id} of {report.value} accepted (job {accepted['job_id']})")
    if not wait and output_file is None:
        if as_json:
            print_json(accepted)
        else:
            typer.echo(export_id)
        return
    hint = f"`asora export status {export_id}` shows it"
    job = client.wait_job(accepted["job_id"], f"exporting {report.value}", timeout, hint)
    raise_if_failed(job, "the export failed")
    _download(client, client.json("GET", f"/exports/{export_id}"), output_file, as_json)


def _report_command(report: Report) -> Callable[..., None]:
    takes = ", ".join((*TIME_PARAMS[report.value], "hub_id", "sku"))

    def command(
        param: Annotated[
            list[str] | None,
            typer.Option(
                "--param", metavar="KEY=VALUE", help=f"A report parameter, repeatable. {report.value} takes {takes}."
            ),
        ] = None,
        wait: Annotated[
            bool, typer.Option("--wait", help="Wait for the export and download it (implied by --output-file).")
        ] = False,
        output_file: OutputOption = None,
        tenant_id: TenantOption = None,
        timeout: TimeoutOption = DEFAULT_TIMEOUT,
        as_json: JsonOption = False,
    ) -> None:
        request_export(report, param or [], wait, output_file, tenant_id, timeout, as_json)

    command.__doc__ = (
        f"Export the {report.value} report as CSV (parameters: {takes}). Without --wait or --output-file, "
        "prints the export id and returns."
    )
    return command


for _report in Report:
    app.command(_report.value, rich_help_panel="Reports")(_report_command(_report))


ExportIdArgument = Annotated[str, typer.Argument(help="The export's id (printed when it was requested).")]


@app.command("status", rich_help_panel="Exports made before")
def status(export_id: ExportIdArgument, tenant_id: TenantOption = None, as_json: JsonOption = False) -> None:
    """Show an export: its report, parameters, status, file name and sha256."""
    export = ApiClient(tenant_id).json("GET", f"/exports/{export_id}")
    if as_json:
        print_json(export)
        return
    shown = table("export", ("field", "value"), ids=("value",))
    for key in ("export_id", "job_id", "report", "status", "filename", "sha256", "row_count", "created_at"):
        shown.add_row(*row((key, export.get(key))))
    shown.add_row(*row(("params", ", ".join(f"{k}={v}" for k, v in export["params"].items()) or "(none)")))
    print_table(shown)


@app.command("list", rich_help_panel="Exports made before")
def list_exports(
    tenant_id: TenantOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="At most this many, newest first.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """List the tenant's exports, newest first (the history is permanent)."""
    page = ApiClient(tenant_id).json("GET", "/exports", params={"limit": limit})
    if as_json:
        print_json(page["items"])
        return
    columns = ("export_id", "report", "status", "rows", "created_at", "filename")
    listed = table("exports", columns, ids=("export_id", "created_at", "filename"), right=("rows",))
    for e in page["items"]:
        listed.add_row(*row((e["export_id"], e["report"], e["status"], e["row_count"], e["created_at"], e["filename"])))
    print_table(listed)


@app.command("download", rich_help_panel="Exports made before")
def download(
    export_id: ExportIdArgument,
    output_file: OutputOption = None,
    tenant_id: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Download a completed export's CSV (checked against its recorded sha256)."""
    if as_json and is_stdout(output_file):
        raise CliError("--json and --output-file - would both write to stdout; choose one", ExitCode.USAGE)
    client = ApiClient(tenant_id)
    _download(client, client.json("GET", f"/exports/{export_id}"), output_file, as_json)
