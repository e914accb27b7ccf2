"""Returns: accepted as jobs (`submit_return`), posted by the worker (`post_return`) under the tenant fence, all
or nothing: RETURN_IN / RETURN_OUT events, the lots they create or draw down, and the return's lines.

- A sale return brings units back at the cost they were issued at. The sale must be costed by a live run (a
  sale of a rolled-back run cannot be returned: SALE_ROLLED_BACK). Its units come back out of the lots the sale
  drew from, latest allocation first (LIFO over the sale's ISSUE events, in ledger order), less what earlier
  returns of the sale already brought back from each lot; each slice is received as a new lot
  `RET-<return id>-<line>` dated at the return, in the bin of the lot it was issued from, at that lot's issued
  unit cost. At most the sold quantity less what was already returned (RETURN_EXCEEDS_SOLD).
- A purchase return sends units back to the vendor out of one live lot at its unit cost: at most what the lot
  still holds (INSUFFICIENT_STOCK).
- Neither may be dated before what it returns (RETURN_BEFORE_SALE, RETURN_BEFORE_RECEIPT).
- A sale return's lots are stock coming in, held to the tenant's `backdated_entries` like a receipt
  (shared/runs/backdating.py): dated before an already-costed sale of its SKU it is refused with
  BACKDATED_RECEIPT in `reject` mode, and in `repost` mode accepted with a repost queued behind it. A purchase
  return is not: it takes only units its lot still holds, which no costed sale consumed, so under FIFO and LIFO
  no costed sale would take other units had it been posted in date order (docs/costing.md).

When no earlier job of the tenant is pending, the worker's answer is certain at intake, and a refusal is
answered there (422, nothing written); otherwise the worker decides and a refusal fails the job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.auth import Principal
from shared.base import new_id
from shared.copyio import copy_rows
from shared.decimals import AMOUNT_SCALE, COST_SCALE, QTY_SCALE, format_scaled
from shared.errors import ValidationFailed
from shared.inventory import checks
from shared.jobs import service as jobs
from shared.jobs.kinds import JobKind
from shared.jobs.models import Job
from shared.jobs.service import AcceptedJob
from shared.ledger.lots import NegativeBalance, NewLots, apply_deltas, encode_deltas, insert_lots
from shared.ledger.models import EventType
from shared.ledger.service import NewEvent, append_events
from shared.returns.models import Return, ReturnKind, ReturnLine
from shared.returns.schemas import ReturnCreate, ReturnPayload
from shared.runs import backdating

LINE_COLUMNS = (
    "return_id", "line", "tenant_id", "run_id", "sku", "source_lot_id", "lot_id", "quantity", "unit_cost", "amount",
)  # fmt: skip


@dataclass
class _Plan:
    """What a return will write: its events, new lots (sale) or lot deltas (purchase), and its lines."""

    sku: str
    run_id: str | None
    events: list[NewEvent] = field(default_factory=list)
    new_lots: list[tuple[str, str, str | None, int, int]] = field(default_factory=list)  # lot, sku, bin, qty, cost
    deltas: dict[str, int] = field(default_factory=dict)
    lines: list[tuple[str, str, int, int, int]] = field(default_factory=list)  # source lot, lot, qty, cost, amount
    to_repost: dict[str, datetime] = field(default_factory=dict)  # repost mode: the SKU and the return's date


def _refused(message: str, reason: str, field_name: str) -> ValidationFailed:
    return ValidationFailed(
        f"the return was refused: {message}; nothing was written",
        reason=reason,
        details=[{"field": field_name, "reason": reason, "message": message}],
    )


def _require_item(session: Session, tenant_id: str, sku: str, *, share: bool) -> None:
    if not checks.live_items(session, tenant_id, [sku], share=share):
        raise _refused(f"item '{sku}' does not exist (or was deleted)", "UNKNOWN_SKU", "sku")


def _plan_sale_return(session: Session, tenant_id: str, ret: ReturnPayload, *, lock: bool) -> _Plan:
    assert ret.sale_id is not None
    binds: dict[str, Any] = {"t": tenant_id, "sale": ret.sale_id}
    sale = session.execute(
        text("""
        SELECT s.run_id, s.sku, s.sale_date, r.first_seq, r.last_seq FROM run_sales s
        JOIN runs r ON r.id = s.run_id AND r.tenant_id = s.tenant_id
        WHERE s.tenant_id = :t AND s.sale_id = :sale AND r.status = 'completed' AND NOT r.dry_run"""),
        binds,
    ).first()
    if sale is None:
        rolled_back = session.scalar(
            text("""
            SELECT EXISTS (SELECT FROM run_sales s JOIN runs r ON r.id = s.run_id AND r.tenant_id = s.tenant_id
                           WHERE s.tenant_id = :t AND s.sale_id = :sale AND r.status = 'rolled_back')"""),
            binds,
        )
        if rolled_back:
            raise _refused(
                f"sale '{ret.sale_id}' belongs to a rolled-back run; it is no longer costed",
                "SALE_ROLLED_BACK",
                "sale_id",
            )
        raise _refused(f"sale '{ret.sale_id}' is not costed by any live run", "MISSING_PARENT", "sale_id")
    run_id, sku, sale_date, first_seq, last_seq = sale
    if ret.returned_at < sale_date:
        raise _refused(
            f"returned_at is before the sale's date ({sale_date.isoformat()})", "RETURN_BEFORE_SALE", "returned_at"
        )
    _require_item(session, tenant_id, sku, share=lock)
    binds |= {"run": run_id, "first": first_seq, "last": last_seq, "date": sale_date}
    # The sale's slices: ISSUE events of its run, found along the time index (a sale's events carry its date).
    issued = session.execute(
        text("""
        SELECT e.lot_id, -sum(e.quantity), min(e.unit_cost), max(e.seq), min(l.bin_id) FROM ledger_events e
        LEFT JOIN lots l ON l.tenant_id = e.tenant_id AND l.lot_id = e.lot_id
        WHERE e.tenant_id = :t AND e.occurred_at = :date AND e.seq BETWEEN :first AND :last AND e.run_id = :run
          AND e.event_type = 'ISSUE' AND e.reference = :sale
        GROUP BY e.lot_id ORDER BY max(e.seq) DESC"""),
        binds,
    ).all()
    returned: dict[str, Decimal] = dict(
        session.execute(
            text("""
            SELECT rl.source_lot_id, sum(rl.quantity) FROM returns r JOIN return_lines rl ON rl.return_id = r.id
            WHERE r.tenant_id = :t AND r.sale_id = :sale AND rl.run_id = :run GROUP BY rl.source_lot_id"""),
            binds,
        ).all()
    )
    wanted = checks.scaled(ret.quantity, QTY_SCALE)
    returnable = [
        (lot_id, bin_id, checks.scaled(cost, COST_SCALE), checks.scaled(qty - returned.get(lot_id, 0), QTY_SCALE))
        for lot_id, qty, cost, _, bin_id in issued
    ]
    left = sum(q for *_, q in returnable)
    if wanted > left:
        raise _refused(
            f"quantity {format_scaled(wanted, QTY_SCALE)} is more than the "
            f"{format_scaled(left, QTY_SCALE)} of sale '{ret.sale_id}' not yet returned",
            "RETURN_EXCEEDS_SOLD",
            "quantity",
        )
    # Its lots are dated at the return: refused (reject) or reposted (repost) before a costed sale of the SKU.
    to_repost = backdating.check(
        session, tenant_id, [backdating.Entry(1, sku, ret.returned_at)], field="returned_at", what="a sale return"
    )
    plan = _Plan(sku=sku, run_id=run_id, to_repost=to_repost)
    for source_lot, bin_id, cost, available in returnable:
        take = min(wanted, available)
        if take <= 0:
            continue
        lot_id = f"RET-{ret.return_id}-{len(plan.lines) + 1}"
        amount = take * cost
        plan.events.append(
            NewEvent(
                EventType.RETURN_IN,
                sku,
                lot_id,
                take,
                cost,
                amount,
                ret.returned_at,
                reference=ret.sale_id,
                bin_id=bin_id,
            )
        )
        plan.new_lots.append((lot_id, sku, bin_id, take, cost))
        plan.lines.append((source_lot, lot_id, take, cost, amount))
        wanted -= take
        if wanted == 0:
            break
    return plan


def _plan_purchase_return(session: Session, tenant_id: str, ret: ReturnPayload, *, lock: bool) -> _Plan:
    assert ret.lot_id is not None
    lot = session.execute(
        text(f"""
        SELECT sku, bin_id, vendor_id, received_at, remaining_quantity, unit_cost FROM lots
        WHERE tenant_id = :t AND lot_id = :lot AND status = 'live' {"FOR UPDATE" if lock else ""}"""),
        {"t": tenant_id, "lot": ret.lot_id},
    ).first()
    if lot is None:
        raise _refused(f"lot '{ret.lot_id}' does not exist (or its receipt was reversed)", "MISSING_PARENT", "lot_id")
    sku, bin_id, vendor_id, received_at, remaining, unit_cost = lot
    if ret.returned_at < received_at:
        raise _refused(
            f"returned_at is before the lot was received ({received_at.isoformat()})", "RETURN_BEFORE_RECEIPT",
            "returned_at",
        )  # fmt: skip
    _require_item(session, tenant_id, sku, share=lock)
    wanted, held = checks.scaled(ret.quantity, QTY_SCALE), checks.scaled(remaining, QTY_SCALE)
    if wanted > held:
        raise _refused(
            f"quantity {format_scaled(wanted, QTY_SCALE)} is more than the {format_scaled(held, QTY_SCALE)} "
            f"lot '{ret.lot_id}' still holds",
            "INSUFFICIENT_STOCK",
            "quantity",
        )
    cost = checks.scaled(unit_cost, COST_SCALE)
    plan = _Plan(sku=sku, run_id=None, deltas={ret.lot_id: -wanted})
    plan.events.append(
        NewEvent(
            EventType.RETURN_OUT,
            sku,
            ret.lot_id,
            -wanted,
            cost,
            -wanted * cost,
            ret.returned_at,
            reference=vendor_id,
            bin_id=bin_id,
        )
    )
    plan.lines.append((ret.lot_id, ret.lot_id, -wanted, cost, -wanted * cost))
    return plan


def _plan(session: Session, tenant_id: str, ret: ReturnPayload, *, lock: bool) -> _Plan:
    if ret.kind == ReturnKind.SALE:
        return _plan_sale_return(session, tenant_id, ret, lock=lock)
    return _plan_purchase_return(session, tenant_id, ret, lock=lock)


def submit_return(
    session: Session, *, tenant_id: str, actor: Principal, body: ReturnCreate, request_id: str | None = None
) -> tuple[Return, AcceptedJob]:
    """Accept a return as a job; a refusal that is certain now (no earlier job pending) is answered now."""
    payload = ReturnPayload(
        return_id=new_id("ret"), kind=ReturnKind(body.kind), sale_id=body.sale_id, lot_id=body.lot_id,
        quantity=body.quantity, returned_at=body.returned_at,
    )  # fmt: skip
    job = jobs.accept_job(
        session,
        tenant_id=tenant_id,
        kind=JobKind.RETURN,
        payload=payload.model_dump(mode="json"),
        actor=actor,
        number_now=True,
    )
    # Numbered first, as a count is: every job numbered before this one has committed, and with none of them
    # pending, the sale or lot this return will meet is the one we see now.
    assert job.seq is not None
    if not jobs.earlier_pending(session, tenant_id, job.seq):
        _plan(session, tenant_id, payload, lock=False)
    row = Return(
        id=payload.return_id, tenant_id=tenant_id, job_id=job.id, kind=payload.kind, sale_id=payload.sale_id,
        lot_id=payload.lot_id, quantity=payload.quantity, returned_at=payload.returned_at,
    )  # fmt: skip
    session.add(row)
    session.flush()
    checks.audit_ok(
        session, actor, tenant_id, "return.accepted", row.id, request_id=request_id, job_id=job.id,
        kind=payload.kind.value, sale_id=payload.sale_id, lot_id=payload.lot_id,
        quantity=format(payload.quantity, "f"),
    )  # fmt: skip
    return row, job


def post_return(session: Session, job: Job) -> dict[str, Any]:
    """Write the return's events, lots and lines, all or nothing (under the tenant fence)."""
    ret = ReturnPayload.model_validate(job.payload)
    tenant_id = job.tenant_id
    plan = _plan(session, tenant_id, ret, lock=True)
    first_seq, last_seq = append_events(session, tenant_id, plan.events, job_id=job.id, run_id=plan.run_id)
    if plan.new_lots:
        rows = [
            (lot_id, sku, bin_id, None, ret.returned_at, quantity, cost, 0, first_seq + n)
            for n, (lot_id, sku, bin_id, quantity, cost) in enumerate(plan.new_lots)
        ]
        insert_lots(session, tenant_id, NewLots.from_rows(rows, source_job_id=job.id))
    if plan.deltas:
        try:
            apply_deltas(
                session, tenant_id, [encode_deltas(list(plan.deltas), list(plan.deltas.values()))], refuse_negative=True
            )
        except NegativeBalance as exc:  # checked above under the lot's row lock; kept as the last wall
            raise _refused("the lot no longer holds the quantity", "INSUFFICIENT_STOCK", "quantity") from exc
    copy_rows(
        session,
        "return_lines",
        LINE_COLUMNS,
        [
            (
                ret.return_id,
                n,
                tenant_id,
                plan.run_id,
                plan.sku,
                source,
                lot_id,
                format_scaled(qty, QTY_SCALE),
                format_scaled(cost, COST_SCALE),
                format_scaled(amount, AMOUNT_SCALE),
            )
            for n, (source, lot_id, qty, cost, amount) in enumerate(plan.lines, 1)
        ],
    )
    repost = backdating.queue_repost(session, tenant_id, plan.to_repost, cause=job.id)
    return {
        **({"repost_job_id": repost.id} if repost else {}),
        "return_id": ret.return_id,
        "kind": ret.kind.value,
        "sale_id": ret.sale_id,
        "run_id": plan.run_id,
        "lot_id": ret.lot_id,
        "sku": plan.sku,
        "quantity": format(ret.quantity, "f"),
        "amount": format_scaled(sum(line[4] for line in plan.lines), AMOUNT_SCALE),
        "lots": [line[1] for line in plan.lines] if ret.kind == ReturnKind.SALE else [],
        "first_seq": first_seq,
        "last_seq": last_seq,
    }


def find_return(session: Session, tenant_id: str, return_id: str) -> tuple[Return, Job, list[ReturnLine]]:
    return jobs.find_posted(session, tenant_id, Return, ReturnLine, "return_id", return_id, "return")


def get_return(session: Session, tenant_id: str, return_id: str) -> dict[str, Any]:
    """A return with its job's status, and its ledgered lines once executed."""
    ret, job, lines = find_return(session, tenant_id, return_id)
    return {
        "id": ret.id,
        "job_id": ret.job_id,
        "kind": ret.kind,
        "sale_id": ret.sale_id,
        "lot_id": ret.lot_id,
        "run_id": lines[0].run_id if lines else None,
        "sku": lines[0].sku if lines else None,
        "quantity": ret.quantity,
        "returned_at": ret.returned_at,
        "status": job.status,
        "error": job.error,
        "amount": sum((line.amount for line in lines), Decimal(0)) if lines else None,
        "created_at": ret.created_at,
        "lines": [
            {
                "line": line.line,
                "source_lot_id": line.source_lot_id,
                "lot_id": line.lot_id,
                "quantity": line.quantity,
                "unit_cost": line.unit_cost,
                "amount": line.amount,
            }
            for line in lines
        ],
    }
