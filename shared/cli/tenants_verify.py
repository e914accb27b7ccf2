"""`asora tenants verify TENANT`: the runbook's post-onboarding verification in one command.

It reads the database directly, as the local administrator, and checks that the tenant has items, that
its stock arrived through the ledger, and that stock on hand (the lots' derived balances) reconciles to the
ledger, per SKU and per lot. Stock arrives two ways, and both count: a receipt job's RECEIPT events (the
events carry the job's id), and a COGS run's lots (RECEIPT events carrying the run's id; the lots name the
run in `source_run_id`). The hash chain is `asora ledger verify`'s job.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared import db
from shared.cli.output import print_json, print_table, row, table
from shared.tenants.models import Tenant

MAX_LISTED = 5


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _master_data(session: Session, tenant_id: str) -> Check:
    counts = {
        name: int(
            session.scalar(
                text(f"SELECT count(*) FROM {name} WHERE tenant_id = :t AND deleted_at IS NULL"), {"t": tenant_id}
            )
            or 0
        )
        for name in ("categories", "hubs", "bins", "vendors", "items")
    }
    detail = ", ".join(f"{n} {name}" for name, n in counts.items())
    return Check("items exist", counts["items"] > 0, detail)


def _without_events(rows: list[Any]) -> list[str]:
    return [source for source, events in rows if events == 0]


def _stock_arrived(session: Session, tenant_id: str) -> Check:
    """Every completed receipt and every run that brought lots wrote RECEIPT events, and there is at least one."""
    name = "stock arrived through ledger RECEIPT events"
    receipts = session.execute(
        text("""
        SELECT j.id, count(e.seq) FROM jobs j
        LEFT JOIN ledger_events e ON e.tenant_id = j.tenant_id AND e.job_id = j.id AND e.event_type = 'RECEIPT'
        WHERE j.tenant_id = :t AND j.kind = 'receipt' AND j.status = 'completed'
        GROUP BY j.id ORDER BY j.id"""),
        {"t": tenant_id},
    ).all()
    runs = session.execute(
        text("""
        SELECT l.source_run_id, count(DISTINCT e.seq) FROM lots l
        LEFT JOIN ledger_events e ON e.tenant_id = l.tenant_id AND e.run_id = l.source_run_id
            AND e.lot_id = l.lot_id AND e.event_type = 'RECEIPT'
        WHERE l.tenant_id = :t AND l.source_run_id IS NOT NULL
        GROUP BY l.source_run_id ORDER BY l.source_run_id"""),
        {"t": tenant_id},
    ).all()
    if not receipts and not runs:
        return Check(name, False, "no stock yet: no completed receipt and no run with lots")
    problems = [
        f"{len(ids)} {what} without RECEIPT events: {', '.join(ids[:MAX_LISTED])}"
        for what, ids in (
            ("completed receipt(s)", _without_events(list(receipts))),
            ("run(s) with lots", _without_events(list(runs))),
        )
        if ids
    ]
    if problems:
        return Check(name, False, "; ".join(problems))
    parts = [
        f"{len(found)} {what}, {sum(int(n) for _, n in found)} RECEIPT event(s)"
        for what, found in (("receipt(s)", receipts), ("run(s) with lots", runs))
        if found
    ]
    return Check(name, True, "; ".join(parts))


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
        _stock_arrived(session, tenant_id),
        _reconcile(session, tenant_id, "sku", "SKU"),
        _reconcile(session, tenant_id, "lot_id", "lot"),
    ]


def verify(tenant_id: str, as_json: bool = False) -> list[Check]:
    """Run the checks and print them on stdout (a table, or JSON)."""
    with db.unit_of_work(tenant_id) as session:
        checks = run_checks(session, tenant_id)
    if as_json:
        passed = all(check.ok for check in checks)
        print_json({"tenant_id": tenant_id, "ok": passed, "checks": [asdict(check) for check in checks]})
        return checks
    shown = table(f"verification of tenant {tenant_id}", ("check", "result", "detail"))
    for check in checks:
        shown.add_row(check.name, "[green]PASS[/green]" if check.ok else "[red]FAIL[/red]", *row((check.detail,)))
    print_table(shown)
    return checks
