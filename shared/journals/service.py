"""A run's journal entry from its stored per-sale results, in the tenant's accounts."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.decimals import AMOUNT_SCALE
from shared.errors import ValidationFailed
from shared.journals import entries
from shared.runs import service as runs
from shared.runs.models import RunSale, RunStatus
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
    rendered = entries.render_journal(journal, fmt)
    name = f"journal_{run_id}{'_reversal' if reversing else ''}{'_by_sale' if group_by == 'sale' else ''}"
    return rendered.content, rendered.media_type, name + rendered.filename_suffix
