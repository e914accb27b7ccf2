"""`asora ops`: the runbook's daily health check and weekly metrics, without bash or psql. The probes live in
shared/health.py and the runbook's thresholds in shared/ops.py; this module gathers and renders them."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from shared.cli.services import ensure_services, system_session
from shared.config import get_settings

app = typer.Typer(help="Operations: health check and weekly metrics.", no_args_is_help=True)
out = Console(soft_wrap=True)
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
        typer.echo(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        table = Table(title="Asora health check")
        for column in ("check", "status", "value", "detail"):
            table.add_column(column)
        for check in report.checks:
            value = "" if check.value is None else json.dumps(check.value, default=str)
            style = STYLE[check.status]
            table.add_row(check.name, f"[{style}]{check.status}[/{style}]", value, check.detail)
        out.print(table)
        out.print(f"overall: {report.status}")
    if not report.healthy:
        raise typer.Exit(1)


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
        typer.echo(json.dumps(metrics, indent=2))
        return
    table = Table(title="Asora weekly metrics (last 7 days)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("active_tenants_7d", "total_runs_7d", "rollbacks_7d", "failed_runs_7d"):
        table.add_row(key, str(metrics[key]))
    out.print(table)
    sizes = Table(title="Table sizes")
    sizes.add_column("table")
    sizes.add_column("size", justify="right")
    for row in metrics["table_sizes"]:
        sizes.add_row(row["table"], row["size"])
    out.print(sizes)
