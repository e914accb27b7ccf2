"""A run's journal entry from its stored per-sale results, in the tenant's accounts."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.decimals import AMOUNT_SCALE
from shared.errors import ValidationFailed
from shared.journals import entries
from shared.runs import repost
from shared.runs import service as runs
from shared.runs.models import Run, RunSale, RunStatus
from shared.tenants.models import Tenant

JOURNALIZABLE = (RunStatus.COMPLETED, RunStatus.ROLLED_BACK, RunStatus.VALIDATED)


def render_for_run(
    session: Session, tenant_id: str, run_id: str, fmt: entries.JournalFormat, group_by: entries.GroupBy
) -> tuple[bytes, str, str]:
    """(content, media type, filename). A rolled-back run gives the reversing entry; a dry run a preview."""
    run = runs.get_run(session, tenant_id, run_id)
    runs.require_finished(run)
    if run.status not in JOURNALIZABLE:
        raise ValidationFailed(f"run '{run_id}' is {run.status}: it costed nothing", reason="NO_DATA")
    tenant = session.get(Tenant, tenant_id)
    assert tenant is not None
    accounts = entries.Accounts(
        cogs_code=tenant.cogs_account_code, cogs_name=tenant.cogs_account_name,
        inventory_code=tenant.inventory_account_code, inventory_name=tenant.inventory_account_name,
    )  # fmt: skip
    rows = session.execute(
        select(RunSale.sale_id, RunSale.sale_date, RunSale.cogs).where(
            RunSale.tenant_id == tenant_id, RunSale.run_id == run_id
        )
    )
    sales = (entries.SaleCost(sale_id, sale_date, int(cogs.scaleb(AMOUNT_SCALE))) for sale_id, sale_date, cogs in rows)
    reversing = run.status == RunStatus.ROLLED_BACK
    journal = entries.build_journal(run_id, sales, accounts=accounts, reversing=reversing, group_by=group_by)
    journal += _adjusting_entries(session, run, accounts)
    rendered = entries.render_journal(journal, fmt)
    name = f"journal_{run_id}{'_reversal' if reversing else ''}{'_by_sale' if group_by == 'sale' else ''}"
    return rendered.content, rendered.media_type, name + rendered.filename_suffix


def _adjusting_entries(session: Session, run: Run, accounts: entries.Accounts) -> list[entries.JournalEntry]:
    """The run's adjusting entries, one per repost that changed its COGS, dated the UTC day the repost was posted
    (the open period, never the sale's); a repost rolled back since adds its reversal, dated the day of the
    rollback. A rolled-back run's journal reverses the adjustments that were live when it was rolled back."""
    out: list[entries.JournalEntry | None] = []
    for adj in repost.run_adjustments(session, run.tenant_id, run.id):
        subject = f"repost {adj.job_id}"
        if run.status == RunStatus.ROLLED_BACK:
            if adj.reversed_by == run.rolled_back_by:
                day = (run.finished_at or adj.posted_at) if adj.reversed_at is None else adj.reversed_at
                out.append(
                    entries.adjusting_entry(run.id, _day(day), adj.amount, subject, accounts=accounts, reversing=True)
                )
            continue
        if run.status != RunStatus.COMPLETED:
            continue
        out.append(entries.adjusting_entry(run.id, _day(adj.posted_at), adj.amount, subject, accounts=accounts))
        if adj.reversed_by is not None and adj.reversed_at is not None:
            out.append(
                entries.adjusting_entry(
                    run.id, _day(adj.reversed_at), adj.amount, subject, accounts=accounts, reversing=True
                )
            )
    return [e for e in out if e is not None]


def _day(value: datetime) -> date:
    return value.astimezone(UTC).date()
