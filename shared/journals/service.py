"""Journal entries in the tenant's accounts: a run's from its stored per-sale results, a return's and a landed
cost's from their posted lines."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.decimals import AMOUNT_SCALE, round_half_up_cents
from shared.errors import Conflict, ValidationFailed
from shared.jobs.kinds import PENDING
from shared.jobs.models import Job
from shared.journals import entries
from shared.landed_costs import service as landed_costs
from shared.landed_costs.models import Target
from shared.returns import service as returns
from shared.returns.models import ReturnKind
from shared.runs import repost, revaluation
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
    accounts = _accounts(session, tenant_id)
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


def _accounts(session: Session, tenant_id: str) -> entries.Accounts:
    tenant = session.get(Tenant, tenant_id)
    assert tenant is not None
    return entries.Accounts(
        cogs_code=tenant.cogs_account_code, cogs_name=tenant.cogs_account_name,
        inventory_code=tenant.inventory_account_code, inventory_name=tenant.inventory_account_name,
    )  # fmt: skip


def _require_posted(job: Job, noun: str, document_id: str, lines: int) -> None:
    if job.status in PENDING:
        raise Conflict(f"{noun} '{document_id}' is still {job.status}", reason="RUN_IN_PROGRESS")
    if not lines:
        raise ValidationFailed(f"{noun} '{document_id}' failed: it posted nothing", reason="NO_DATA")


def render_for_return(
    session: Session, tenant_id: str, return_id: str, fmt: entries.JournalFormat
) -> tuple[bytes, str, str]:
    """A sale return: debit Inventory, credit COGS. A purchase return: debit Accounts Payable (the vendor owes
    the units' cost back), credit Inventory. One entry, dated at the return (UTC), amount rounded half up."""
    ret, job, lines = returns.find_return(session, tenant_id, return_id)
    _require_posted(job, "return", return_id, len(lines))
    accounts = _accounts(session, tenant_id)
    cents = abs(round_half_up_cents(sum(int(line.amount.scaleb(AMOUNT_SCALE)) for line in lines), AMOUNT_SCALE))
    inventory = (accounts.inventory_code, accounts.inventory_name, cents)
    if ret.kind == ReturnKind.SALE:
        memo = f"Return {ret.id} of sale {ret.sale_id} (run {lines[0].run_id})"
        debits, credits = [inventory], [(accounts.cogs_code, accounts.cogs_name, cents)]
    else:
        memo = f"Return {ret.id} of lot {ret.lot_id} to its vendor"
        debits, credits = [(accounts.payable_code, accounts.payable_name, cents)], [inventory]
    journal = entries.document_entry(ret.id, ret.returned_at.astimezone(UTC).date(), memo, debits, credits)
    rendered = entries.render_journal(journal, fmt)
    return rendered.content, rendered.media_type, f"journal_{ret.id}{rendered.filename_suffix}"


def render_for_landed_cost(
    session: Session, tenant_id: str, cost_id: str, fmt: entries.JournalFormat
) -> tuple[bytes, str, str]:
    """Credit Accounts Payable with the landed cost; debit Inventory with the revaluation of the units on hand
    and COGS with the rest (the sales' adjustments and rounding). Dated at `allocated_at` (UTC)."""
    cost, job, lines = landed_costs.find_landed_cost(session, tenant_id, cost_id)
    _require_posted(job, "landed cost", cost_id, len(lines))
    accounts = _accounts(session, tenant_id)
    total = round_half_up_cents(int(cost.amount.scaleb(AMOUNT_SCALE)), AMOUNT_SCALE)
    on_hand = sum(int(line.amount.scaleb(AMOUNT_SCALE)) for line in lines if line.target == Target.ON_HAND)
    inventory = round_half_up_cents(on_hand, AMOUNT_SCALE)
    runs_adjusted = sorted({line.run_id for line in lines if line.run_id})
    memo = f"Landed cost {cost.id} on lot {cost.lot_id}" + (
        f" (COGS of runs {', '.join(runs_adjusted)})" if runs_adjusted else ""
    )
    if cost.memo:
        memo += f": {cost.memo}"
    journal = entries.document_entry(
        cost.id,
        cost.allocated_at.astimezone(UTC).date(),
        memo,
        [
            (accounts.inventory_code, accounts.inventory_name, inventory),
            (accounts.cogs_code, accounts.cogs_name, total - inventory),
        ],
        [(accounts.payable_code, accounts.payable_name, total)],
    )
    rendered = entries.render_journal(journal, fmt)
    return rendered.content, rendered.media_type, f"journal_{cost.id}{rendered.filename_suffix}"


def render_for_revaluation(
    session: Session, tenant_id: str, job_id: str, fmt: entries.JournalFormat
) -> tuple[bytes, str, str]:
    """A revaluation (shared/runs/revaluation.py): Dr Inventory, Cr COGS when it raised the SKU's value, the
    reverse when it lowered it; dated the day the switch was requested (UTC), rounded half up to cents."""
    job, amount = revaluation.find_revaluation(session, tenant_id, job_id)
    _require_posted(job, "revaluation", job_id, 1 if amount else 0)
    accounts = _accounts(session, tenant_id)
    cents = round_half_up_cents(abs(amount), AMOUNT_SCALE)
    inventory = (accounts.inventory_code, accounts.inventory_name, cents)
    cogs = (accounts.cogs_code, accounts.cogs_name, cents)
    result = job.result or {}
    memo = (
        f"Revaluation of SKU {result.get('sku')} on its switch from {result.get('previous_method')} to "
        f"{result.get('method')} (moving-average pool to its lots' own costs)"
    )
    debits, credits = ([inventory], [cogs]) if amount > 0 else ([cogs], [inventory])
    day = datetime.fromisoformat(job.payload["requested_at"]).astimezone(UTC).date()
    journal = entries.document_entry(job_id, day, memo, debits, credits)
    rendered = entries.render_journal(journal, fmt)
    return rendered.content, rendered.media_type, f"journal_{job_id}{rendered.filename_suffix}"
