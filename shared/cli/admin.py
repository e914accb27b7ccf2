"""The administrator's commands, which talk to the database directly as the trusted local administrator:
`tenants create`, `tenants verify`, `keys create` and `runs reap`."""

from __future__ import annotations

from typing import Annotated

import typer

from shared.cli.choices import Plan, Role, RoleModel
from shared.cli.errors import CliError
from shared.cli.output import info, print_table, row, success, table
from shared.cli.runs import JsonOption
from shared.cli.services import ensure_services

tenants_app = typer.Typer(help="Tenants (administrator, direct database access).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (administrator, direct database access).", no_args_is_help=True)
runs_app = typer.Typer(help="Run maintenance (administrator, direct database access).", no_args_is_help=True)

TenantArgument = Annotated[str, typer.Argument(help="The tenant id: lowercase letters, digits and dashes.")]


@tenants_app.command("create")
def tenants_create(
    tenant_id: TenantArgument,
    name: Annotated[str, typer.Option(help="Display name. Default: the tenant id.")] = "",
    plan: Annotated[Plan, typer.Option(help="The plan, which sets the tenant's limits.")] = Plan.FREE,
    role_model: Annotated[
        RoleModel, typer.Option("--role-model", help="standard: owner, manager, clerk, viewer; simple: owner, member.")
    ] = RoleModel.STANDARD,
) -> None:
    """Create a tenant with its plan and role model."""
    from shared import db
    from shared.auth import LOCAL_ADMIN
    from shared.tenants import service as tenants

    ensure_services()
    with db.unit_of_work() as session:
        tenants.create_tenant(
            session,
            tenant_id=tenant_id,
            name=name or tenant_id,
            plan=plan.value,
            role_model=role_model.value,
            actor=LOCAL_ADMIN,
        )
    success(f"tenant {tenant_id} created (plan {plan.value}, role model {role_model.value})")


@tenants_app.command("verify")
def tenants_verify(tenant_id: TenantArgument, as_json: JsonOption = False) -> None:
    """Post-onboarding verification: the tenant exists, items exist, stock arrived through the ledger (receipts
    or a run's lots), stock reconciles to the ledger per SKU and per lot. Exit code 1 when a check fails."""
    from shared.cli.tenants_verify import verify

    ensure_services()
    checks = verify(tenant_id, as_json=as_json)
    failed = [check for check in checks if not check.ok]
    if failed:
        # The failing checks again, on stderr: what went wrong is visible even when stdout goes to a file.
        raise CliError(
            f"verification failed: {len(failed)} of {len(checks)} checks",
            lines=[f"FAIL {check.name}: {check.detail}" for check in failed],
        )
    success("all checks passed")


@keys_app.command("create")
def keys_create(
    role: Annotated[Role, typer.Option(help="operator (no --tenant-id), or a role of the tenant's role model.")],
    tenant_id: Annotated[
        str | None, typer.Option("--tenant-id", help="The key's tenant; omit for an operator key.")
    ] = None,
    name: Annotated[str, typer.Option(help="A label for the key, shown in the audit.")] = "cli",
) -> None:
    """Create an API key. The key is printed once, on stdout; only its hash is stored."""
    from shared import db
    from shared.auth import LOCAL_ADMIN
    from shared.tenants import service as tenants

    ensure_services()
    with db.unit_of_work(tenant_id or db.SYSTEM_SCOPE) as session:
        key, raw = tenants.create_key(session, tenant_id=tenant_id, role=role.value, name=name, actor=LOCAL_ADMIN)
    info(f"key id {key.id} ({role.value}); the key is shown only now:")
    typer.echo(raw)


@runs_app.command("reap")
def runs_reap(
    stale_after: Annotated[
        int | None,
        typer.Option(
            "--stale-after", min=0, help="Seconds without a heartbeat. Default: ASORA_JOB_STALE_AFTER_SECONDS."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Re-queue (or fail, past the attempt cap) jobs whose worker stopped heartbeating."""
    from shared import registry
    from shared.cli.output import print_json
    from shared.config import get_settings
    from shared.jobs import runner

    ensure_services()
    outcomes = runner.reap_stale_jobs(get_settings(), registry.TABLE, stale_after)
    if as_json:
        print_json(outcomes)
        return
    if outcomes:
        shown = table("reaped jobs", ("action", "job_id", "tenant_id"), ids=("job_id", "tenant_id"))
        for outcome in outcomes:
            shown.add_row(*row((outcome["action"], outcome["job_id"], outcome["tenant_id"])))
        print_table(shown)
    info(f"{len(outcomes)} job(s) reaped")
