"""Receiving: a receipt is checked at intake for a fast answer (`submit_receipt`) and posted by the worker
(`post_receipt`: RECEIPT events and their lots, all or nothing), checked again there under the tenant fence
with the vendor, items and bins share-locked. The worker's answer is the one that counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.auth import Principal
from shared.decimals import AMOUNT_SCALE, COST_SCALE, QTY_SCALE, format_scaled
from shared.errors import ValidationFailed
from shared.inventory import checks, master
from shared.inventory.models import Bin, Vendor
from shared.inventory.schemas import ReceiptCreate, ReceiptPayload
from shared.jobs import service as jobs
from shared.jobs.kinds import JobKind
from shared.jobs.models import Job
from shared.jobs.service import AcceptedJob
from shared.ledger.lots import NewLots, insert_lots
from shared.ledger.models import Lot
from shared.ledger.service import NewEvent, append_events
from shared.runs import backdating


@dataclass(frozen=True)
class _ReceiptLine:
    row: int
    sku: str
    bin_id: str
    lot_id: str | None
    quantity: int
    unit_price: int
    freight: int

    @property
    def unit_cost(self) -> int:
        return self.unit_price + self.freight


def _live_bins(session: Session, tenant_id: str, bin_ids: set[str], *, share: bool) -> set[str]:
    query = select(Bin.id).where(Bin.tenant_id == tenant_id, Bin.id.in_(bin_ids), Bin.deleted_at.is_(None))
    if share:
        query = query.with_for_update(read=True)
    return set(session.scalars(query))


def _check_receipt(session: Session, tenant_id: str, receipt: ReceiptPayload, *, share: bool) -> list[_ReceiptLine]:
    """Every reason the receipt cannot be posted, with rows; or its lines with their bins resolved."""
    vendor = master.find_live(session, Vendor, tenant_id, receipt.vendor_id, share=share)
    if vendor is None:
        raise ValidationFailed(
            f"vendor '{receipt.vendor_id}' does not exist",
            reason="MISSING_PARENT",
            details=[checks.missing_parent("vendor_id", "vendor", receipt.vendor_id)],
        )
    if not vendor.enabled:
        raise ValidationFailed(
            f"vendor '{vendor.id}' is disabled; receiving from it is blocked",
            reason="VENDOR_DISABLED",
            details=[{"field": "vendor_id", "reason": "VENDOR_DISABLED", "message": "the vendor is disabled"}],
        )
    items = checks.live_items(session, tenant_id, [line.sku for line in receipt.lines], share=share)
    wanted_bins = {line.bin_id for line in receipt.lines if line.bin_id}
    wanted_bins |= {item.default_bin_id for item in items.values() if item.default_bin_id}
    bins = _live_bins(session, tenant_id, wanted_bins, share=share)
    errors: list[dict[str, Any]] = []
    resolved: list[_ReceiptLine] = []
    given_lots: dict[str, int] = {}
    for row, line in enumerate(receipt.lines, 1):
        item = items.get(line.sku)
        if item is None:
            errors.append(checks.unknown_sku(row, line.sku))
            continue
        bin_id = line.bin_id or item.default_bin_id
        if bin_id is None:
            errors.append(
                {
                    "row": row,
                    "field": "bin_id",
                    "reason": "MISSING_PARENT",
                    "message": f"no bin_id given and item '{line.sku}' has no default bin",
                }
            )
            continue
        if bin_id not in bins:
            errors.append(checks.missing_parent("bin_id", "bin", bin_id, row))
            continue
        if line.lot_id is not None:
            if line.lot_id in given_lots:
                errors.append(
                    {
                        "row": row,
                        "field": "lot_id",
                        "reason": "LOT_CONFLICT",
                        "message": f"lot '{line.lot_id}' appears twice (rows {given_lots[line.lot_id]} and {row})",
                    }
                )
                continue
            given_lots[line.lot_id] = row
        resolved.append(
            _ReceiptLine(
                row=row,
                sku=line.sku,
                bin_id=bin_id,
                lot_id=line.lot_id,
                quantity=checks.scaled(line.quantity, QTY_SCALE),
                unit_price=checks.scaled(line.unit_cost, COST_SCALE),
                freight=checks.scaled(line.freight_cost_per_unit, COST_SCALE),
            )
        )
    if given_lots:
        live = session.scalars(
            select(Lot.lot_id).where(Lot.tenant_id == tenant_id, Lot.lot_id.in_(given_lots), Lot.status == "live")
        ).all()
        errors += [
            {
                "row": given_lots[lot_id],
                "field": "lot_id",
                "reason": "LOT_CONFLICT",
                "message": f"lot '{lot_id}' already exists and is live; a lot is received once",
            }
            for lot_id in sorted(live)
        ]
    if errors:
        raise checks.refusal(sorted(errors, key=lambda e: int(e.get("row", 0))), "receipt")
    return resolved


def _entries(lines: list[_ReceiptLine], receipt: ReceiptPayload) -> list[backdating.Entry]:
    return [backdating.Entry(line.row, line.sku, receipt.received_at) for line in lines]


def submit_receipt(
    session: Session, *, tenant_id: str, actor: Principal, body: ReceiptCreate, request_id: str | None = None
) -> AcceptedJob:
    """Check the receipt against the tenant's master data and accept it as a job (the worker posts it)."""
    payload = ReceiptPayload(vendor_id=body.vendor_id, received_at=body.received_at, lines=body.lines)
    lines = _check_receipt(session, tenant_id, payload, share=False)
    backdating.check(session, tenant_id, _entries(lines, payload), field="received_at", what="a receipt")
    job_id = jobs.new_job_id()
    checks.audit_ok(
        session,
        actor,
        tenant_id,
        "receipt.accepted",
        job_id,
        request_id=request_id,
        job_id=job_id,
        vendor_id=body.vendor_id,
        lines=len(body.lines),
    )
    return jobs.accept_job(
        session,
        tenant_id=tenant_id,
        kind=JobKind.RECEIPT,
        payload=payload.model_dump(mode="json"),
        actor=actor,
        job_id=job_id,
    )


def post_receipt(session: Session, job: Job) -> dict[str, Any]:
    """Write the receipt's RECEIPT events and lots, all or nothing. Runs under the tenant fence; the vendor,
    items and bins are share-locked so a concurrent disable or delete waits for this transaction."""
    receipt = ReceiptPayload.model_validate(job.payload)
    lines = _check_receipt(session, job.tenant_id, receipt, share=True)
    backdated = backdating.check(
        session, job.tenant_id, _entries(lines, receipt), field="received_at", what="a receipt"
    )
    # A generated lot id is fixed by the job and line, so a retried job writes the same lots.
    lot_ids = [line.lot_id or f"RCV-{job.id}-{line.row}" for line in lines]
    events = [
        NewEvent(
            "RECEIPT",
            line.sku,
            lot_id,
            line.quantity,
            line.unit_cost,
            line.quantity * line.unit_cost,
            receipt.received_at,
            reference=receipt.vendor_id,
            bin_id=line.bin_id,
        )
        for line, lot_id in zip(lines, lot_ids, strict=True)
    ]
    first_seq, last_seq = append_events(session, job.tenant_id, events, job_id=job.id, run_id=None)
    # A lot id whose earlier receipt a rollback reversed is received anew; a live one was refused above.
    rows = [
        (
            lot_id,
            line.sku,
            line.bin_id,
            receipt.vendor_id,
            receipt.received_at,
            line.quantity,
            line.unit_price,
            line.freight,
            first_seq + n,
        )
        for n, (line, lot_id) in enumerate(zip(lines, lot_ids, strict=True))
    ]
    insert_lots(session, job.tenant_id, NewLots.from_rows(rows, source_job_id=job.id))
    repost = backdating.queue_repost(session, job.tenant_id, backdated, cause=job.id)
    return {
        **({"repost_job_id": repost.id} if repost else {}),
        "vendor_id": receipt.vendor_id,
        "lines": len(lines),
        "total_quantity": format_scaled(sum(line.quantity for line in lines), QTY_SCALE),
        "total_value": format_scaled(sum(e.amount for e in events), AMOUNT_SCALE),
        "first_seq": first_seq,
        "last_seq": last_seq,
    }
