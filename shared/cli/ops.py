"""`asora ops`: the runbook's daily health check and weekly metrics, without bash or psql. The probes live in
shared/health.py and the runbook's thresholds in shared/ops.py; this module gathers and renders them."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from shared.cli.errors import ExitCode
from shared.cli.output import out, print_json, print_table, row, table
from shared.cli.services import ensure_services, system_session
from shared.config import get_settings

app = typer.Typer(help="Operations: health check and weekly metrics.", no_args_is_help=True)
STYLE = {"ok": "green", "warning": "yellow", "alert": "red", "down": "red"}


@app.command("health")
def health(
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    api_url: Annotated[str | None, typer.Option("--api-url", help="default: ASORA_API_URL")] = None,
) -> None:
    """API, database, Redis and workers up; failed runs against the runbook's thresholds.
    Exit code 1 when unhealthy (a dependency down, or more than 3 runs failed for an internal reason in the
    last hour). Runs refused for their input are shown apart and never make the system unhealthy."""
    from shared import health as probes
    from shared import ops
    from shared.db import get_engine
    from worker.health import ping_workers

    urls = ensure_services()
    api = probes.check_api(api_url or get_settings().api_url)
    report = ops.HealthReport(
        [
            api,
            probes.check_database(get_engine()),
            probes.check_redis(urls.redis_url),
            probes.check_workers(lambda: ping_workers(timeout=1.5), api),
            *ops.check_activity(system_session),
        ]
    )
    if as_json:
        print_json(report.as_dict())
    else:
        shown = table("Asora health check", ("check", "status", "value", "detail"))
        for check in report.checks:
            style = STYLE[check.status]
            shown.add_row(check.name, f"[{style}]{check.status}[/{style}]", *row((_value(check.value), check.detail)))
        print_table(shown)
        out().print(f"overall: {report.status}", markup=False)
    if not report.healthy:
        raise typer.Exit(ExitCode.FAILED)


def _value(value: Any) -> str:
    """A check's value as text: `database ok, redis ok` for the API's own checks, never a Python dict."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return "" if value is None else json.dumps(value, default=str)


@app.command("weekly-metrics")
def weekly_metrics(
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Active tenants, runs, rollbacks and failures of the last 7 days, and table sizes."""
    from shared import ops

    ensure_services()
    with system_session() as session:
        metrics: dict[str, Any] = ops.weekly_metrics(session)
    if as_json:
        print_json(metrics)
        return
    shown = table("Asora weekly metrics (last 7 days)", ("metric", "value"), right=("value",))
    for key in ("active_tenants_7d", "total_runs_7d", "rollbacks_7d", "failed_runs_7d"):
        shown.add_row(*row((key, metrics[key])))
    print_table(shown)
    sizes = table("Table sizes", ("table", "size"), right=("size",))
    for size in metrics["table_sizes"]:
        sizes.add_row(*row((size["table"], size["size"])))
    print_table(sizes)
