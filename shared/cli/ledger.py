"""`asora ledger verify`: check a tenant's hash chain and derived tables, and optionally rebuild the derived
tables, talking to the database directly as a trusted local administrator. The work is in
shared/ledger/verify.py; this module renders it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from shared.cli.errors import CliError, ExitCode
from shared.cli.output import err, out, print_json, print_table, row, table

if TYPE_CHECKING:
    from shared.ledger.verify import VerifyResult

app = typer.Typer(help="The ledger: verification and rebuild of derived tables.", no_args_is_help=True)


@app.command("verify")
def verify(
    tenant_id: Annotated[str, typer.Option("--tenant-id", help="The tenant whose ledger to verify.")],
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
    with db.unit_of_work(tenant_id) as session:
        exists = session.get(Tenant, tenant_id) is not None
    if not exists:
        raise CliError(f"tenant '{tenant_id}' not found", ExitCode.USAGE)

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
        print_json(result.as_dict())
    else:
        _render(result)
    if not result.ok:
        raise CliError("differences remain" if result.chain_ok else "the hash chain is broken")


def _render(result: VerifyResult) -> None:
    repaired = set(result.repaired)
    out().print(
        f"tenant {result.tenant_id}: {result.events} ledger events, head seq {result.head_seq}, "
        f"hash chain {'intact' if result.chain_ok else 'BROKEN'}",
        markup=False,
    )
    if result.differences:
        shown = table("differences from the ledger", ("check", "key", "ledger says", "stored", "state"), ids=("key",))
        for d in result.differences:
            state = "repaired" if d in repaired else ("repairable" if d.repairable else "not repairable")
            shown.add_row(*row((d.check, d.key, d.expected, d.actual, state)))
        print_table(shown)
    if result.chain_findings_omitted:
        err().print(f"[red]{result.chain_findings_omitted} more ledger findings not shown[/red]")
    if result.ok:
        err().print("[green]no differences remain[/green]")
