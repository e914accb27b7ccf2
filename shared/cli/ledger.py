"""`asora ledger verify`: check a tenant's hash chain and derived tables, and optionally rebuild the derived
tables, talking to the database directly as a trusted local administrator. The work is in
shared/ledger/verify.py; this module renders it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from shared.ledger.verify import VerifyResult

app = typer.Typer(help="The ledger: verification and rebuild of derived tables.", no_args_is_help=True)
out = Console(soft_wrap=True)


@app.command("verify")
def verify(
    tenant_id: Annotated[str, typer.Option("--tenant-id")],
    repair: Annotated[bool, typer.Option("--repair", help="rebuild derived tables (never the ledger)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Recompute derived tables and the hash chain from the ledger and report every difference. Exit code 1
    when a difference remains (after --repair, only ledger findings can remain)."""
    from shared import db
    from shared.audit import service as audit
    from shared.cli.services import ensure_services
    from shared.ledger import verify as ledger_verify
    from shared.tenants.models import Tenant

    ensure_services()
    with db.unit_of_work(db.SYSTEM_SCOPE) as session:
        exists = session.get(Tenant, tenant_id) is not None
    if not exists:
        typer.echo(f"tenant '{tenant_id}' not found", err=True)
        raise typer.Exit(2)

    scope = db.unit_of_work(tenant_id) if repair else ledger_verify.snapshot(tenant_id)
    with scope as session:
        result = ledger_verify.verify_ledger(session, tenant_id, repair=repair)
        audit.record(
            session,
            tenant_id=tenant_id,
            action="ledger.repaired" if repair else "ledger.verified",
            outcome="ok" if result.ok else "differences",
            actor_role="cli",
            details={
                "events": result.events,
                "differences": len(result.differences),
                "repaired": len(result.repaired),
                "chain_ok": result.chain_ok,
            },
        )

    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
    else:
        _render(result)
    if not result.ok:
        raise typer.Exit(1)


def _render(result: VerifyResult) -> None:
    repaired = set(result.repaired)
    out.print(
        f"tenant {result.tenant_id}: {result.events} ledger events, head seq {result.head_seq}, "
        f"hash chain {'intact' if result.chain_ok else '[red]BROKEN[/red]'}"
    )
    if result.differences:
        table = Table(title="differences from the ledger")
        for column in ("check", "key", "ledger says", "stored", "state"):
            table.add_column(column)
        for d in result.differences:
            state = "repaired" if d in repaired else ("repairable" if d.repairable else "not repairable")
            table.add_row(d.check, d.key, d.expected or "", d.actual or "", state)
        out.print(table)
    if result.chain_findings_omitted:
        out.print(f"[red]{result.chain_findings_omitted} more ledger findings not shown[/red]")
    out.print("[green]no differences remain[/green]" if result.ok else "[red]differences remain[/red]")
