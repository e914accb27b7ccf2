"""`asora tenants verify TENANT`: the runbook's post-onboarding verification in one command.

It reads the database directly, as the local administrator, and checks that the tenant has items, that
its receipts produced ledger events, and that stock on hand (the lots' derived balances) reconciles to
the ledger, per SKU and per lot. The hash chain is `asora ledger verify`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from sqlalchemy import text
from sqlalchemy.orm import Session

from shared import db
from shared.cli.client import console
from shared.tenants.models import Tenant

MAX_LISTED = 5


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _master_data(session: Session, tenant_id: str) -> Check:
    counts = {
        table: int(
            session.scalar(
                text(f"SELECT count(*) FROM {table} WHERE tenant_id = :t AND deleted_at IS NULL"), {"t": tenant_id}
            )
            or 0
        )
        for table in ("categories", "hubs", "bins", "vendors", "items")
    }
    detail = ", ".join(f"{n} {table}" for table, n in counts.items())
    return Check("items exist", counts["items"] > 0, detail)


def _receipts(session: Session, tenant_id: str) -> Check:
    rows = session.execute(
        text("""
        SELECT j.id, count(e.seq) FROM jobs j
        LEFT JOIN ledger_events e ON e.tenant_id = j.tenant_id AND e.job_id = j.id AND e.event_type = 'RECEIPT'
        WHERE j.tenant_id = :t AND j.kind = 'receipt' AND j.status = 'completed'
        GROUP BY j.id ORDER BY j.id"""),
        {"t": tenant_id},
    ).all()
    if not rows:
        return Check("receipts produced ledger events", False, "no completed receipt yet")
    empty = [job_id for job_id, events in rows if events == 0]
    if empty:
        return Check(
            "receipts produced ledger events",
            False,
            f"{len(empty)} completed receipt(s) without RECEIPT events: {', '.join(empty[:MAX_LISTED])}",
        )
    return Check(
        "receipts produced ledger events",
        True,
        f"{len(rows)} receipt(s), {sum(int(n) for _, n in rows)} RECEIPT event(s)",
    )


def _reconcile(session: Session, tenant_id: str, key: str, label: str) -> Check:
    """Lots' remaining quantity against the ledger's net quantity, grouped by `key` (sku or lot_id)."""
    rows = session.execute(
        text(f"""
        WITH stock AS (SELECT {key} AS k, sum(remaining_quantity) AS q FROM lots WHERE tenant_id = :t GROUP BY {key}),
             ledger AS (SELECT {key} AS k, sum(quantity) AS q FROM ledger_events WHERE tenant_id = :t GROUP BY {key})
        SELECT coalesce(s.k, l.k), coalesce(s.q, 0), coalesce(l.q, 0)
        FROM stock s FULL OUTER JOIN ledger l ON l.k = s.k
        ORDER BY 1"""),
        {"t": tenant_id},
    ).all()
    differing = [(k, stock, ledger) for k, stock, ledger in rows if stock != ledger]
    if differing:
        listed = "; ".join(f"{k}: lots {stock} vs ledger {ledger}" for k, stock, ledger in differing[:MAX_LISTED])
        return Check(f"stock reconciles to the ledger per {label}", False, f"{len(differing)} differ: {listed}")
    total = sum((stock for _, stock, _ in rows), start=0)
    return Check(f"stock reconciles to the ledger per {label}", True, f"{len(rows)} {label}(s), {total} on hand")


def run_checks(session: Session, tenant_id: str) -> list[Check]:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        return [Check("tenant exists", False, f"no tenant '{tenant_id}'")]
    return [
        Check("tenant exists", True, f"plan {tenant.plan}, role model {tenant.role_model}"),
        _master_data(session, tenant_id),
        _receipts(session, tenant_id),
        _reconcile(session, tenant_id, "sku", "SKU"),
        _reconcile(session, tenant_id, "lot_id", "lot"),
    ]


def verify(tenant_id: str) -> bool:
    """Run and print the checks; True when all pass."""
    with db.unit_of_work(tenant_id) as session:
        checks = run_checks(session, tenant_id)
    table = Table(title=f"verification of tenant {tenant_id}")
    for column in ("check", "result", "detail"):
        table.add_column(column)
    for check in checks:
        table.add_row(check.name, "[green]PASS[/green]" if check.ok else "[red]FAIL[/red]", check.detail)
    console.print(table)
    passed = all(check.ok for check in checks)
    console.print("[green]all checks passed[/green]" if passed else "[red]verification failed[/red]")
    return passed
