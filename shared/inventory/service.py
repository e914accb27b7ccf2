"""Master data (create, read, list, update, soft delete, vendor eligibility) with plan ceilings, and the
intake and execution of receipts and cycle counts.

Every master-data write first takes the tenant's row lock (`plans.lock_tenant`), so plan ceilings and
parent/child checks see a stable picture: two creations at a ceiling cannot both pass, and a parent cannot
be deleted while a child is being attached to it. Receipts and counts are checked at intake for a fast
answer and checked again in the worker, under the tenant fence, with the rows they depend on share-locked;
the worker's answer is the one that counts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from shared.audit import service as audit
from shared.auth import Principal
from shared.base import new_id, utcnow
from shared.copyio import copy_rows
from shared.decimals import AMOUNT_SCALE, COST_SCALE, QTY_SCALE, format_scaled
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.inventory.models import Bin, Category, Count, CountLine, Hub, Item, Vendor
from shared.inventory.schemas import CountCreate, CountLineIn, CountPayload, ReceiptCreate, ReceiptPayload
from shared.jobs import service as jobs
from shared.jobs.kinds import JobKind
from shared.jobs.models import Job
from shared.ledger.lots import NewLots, apply_deltas, encode_deltas, insert_lots
from shared.ledger.models import Lot
from shared.ledger.service import NewEvent, append_events
from shared.pagination import page
from shared.tenants import plans

M = TypeVar("M", Category, Hub, Bin, Vendor, Item)

# model -> (id prefix, plan limit, noun used in messages and audit actions)
KINDS: dict[type[Any], tuple[str, str, str]] = {
    Category: ("cat", "categories", "category"),
    Hub: ("hub", "hubs", "hub"),
    Bin: ("bin", "bins", "bin"),
    Vendor: ("ven", "vendors", "vendor"),
    Item: ("item", "items", "item"),
}
MAX_ID_LENGTH = 40


def noun(model: type[Any]) -> str:
    return KINDS[model][2]


def _missing_parent(field: str, noun_: str, ref: str, row: int | None = None) -> dict[str, Any]:
    detail: dict[str, Any] = {"field": field, "reason": "MISSING_PARENT", "message": f"{noun_} '{ref}' does not exist"}
    if row is not None:
        detail["row"] = row
    return detail


def _record(session: Session, actor: Principal | None, tenant_id: str, action: str, target: str, **extra: Any) -> None:
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action=action,
        target=target,
        outcome="ok",
        request_id=extra.pop("request_id", None),
        job_id=extra.pop("job_id", None),
        details=extra or None,
    )


# --- reading ------------------------------------------------------------------------------------------


def find_live(session: Session, model: type[M], tenant_id: str, record_id: str, *, share: bool = False) -> M | None:
    if len(record_id) > MAX_ID_LENGTH or "\x00" in record_id:
        return None
    query = select(model).where(model.id == record_id, model.tenant_id == tenant_id, model.deleted_at.is_(None))
    if share:
        query = query.with_for_update(read=True)
    return session.scalar(query)


def get_record(session: Session, model: type[M], tenant_id: str, record_id: str) -> M:
    record = find_live(session, model, tenant_id, record_id)
    if record is None:
        raise NotFound(f"{noun(model)} '{record_id}' not found")
    return record


def list_records(
    session: Session,
    model: type[M],
    tenant_id: str,
    *,
    limit: int,
    cursor: str | None,
    filters: dict[str, str] | None = None,
) -> tuple[list[M], str | None]:
    """A page of live records in id (creation) order, and the cursor of the next page or None."""
    query = select(model).where(model.tenant_id == tenant_id, model.deleted_at.is_(None))
    for column, value in (filters or {}).items():
        query = query.where(getattr(model, column) == value)
    return page(session, query, model.id, limit=limit, cursor=cursor)


# --- master data writes -------------------------------------------------------------------------------


def _require_parent(session: Session, model: type[M], tenant_id: str, ref: str, field: str) -> M:
    parent = find_live(session, model, tenant_id, ref)
    if parent is None:
        raise ValidationFailed(
            f"{field} names no existing {noun(model)}; create the {noun(model)} first (onboarding order: "
            "categories, hubs, bins, vendors, items)",
            reason="MISSING_PARENT",
            details=[_missing_parent(field, noun(model), ref)],
        )
    return parent


def _check_sku_free(session: Session, tenant_id: str, sku: str) -> None:
    taken = session.scalar(
        select(Item.id).where(Item.tenant_id == tenant_id, Item.sku == sku, Item.deleted_at.is_(None))
    )
    if taken is not None:
        raise Conflict(
            f"an item with SKU '{sku}' already exists",
            reason="ALREADY_EXISTS",
            details=[{"field": "sku", "message": f"SKU '{sku}' is item '{taken}'"}],
        )


def create_record(
    session: Session,
    model: type[M],
    tenant_id: str,
    values: dict[str, Any],
    *,
    actor: Principal | None,
    request_id: str | None = None,
) -> M:
    """Create a master record after checking its parents and the plan ceiling for its kind."""
    prefix, limit_name, kind = KINDS[model]
    plans.lock_tenant(session, tenant_id)
    if model is Bin:
        _require_parent(session, Hub, tenant_id, values["hub_id"], "hub_id")
    if model is Item:
        _require_parent(session, Category, tenant_id, values["category_id"], "category_id")
        if values.get("default_bin_id") is not None:
            _require_parent(session, Bin, tenant_id, values["default_bin_id"], "default_bin_id")
        _check_sku_free(session, tenant_id, values["sku"])
    used = session.scalar(
        select(func.count()).select_from(model).where(model.tenant_id == tenant_id, model.deleted_at.is_(None))
    )
    plans.check_limit(session, tenant_id, limit_name, int(used or 0))
    record = model(id=new_id(prefix), tenant_id=tenant_id, **values)
    session.add(record)
    session.flush()
    session.refresh(record)
    _record(session, actor, tenant_id, f"{kind}.created", record.id, request_id=request_id, values=values)
    return record


IMMUTABLE = {Bin: ("hub_id",), Item: ("sku",)}


def update_record(
    session: Session,
    model: type[M],
    tenant_id: str,
    record_id: str,
    changes: dict[str, Any],
    *,
    actor: Principal | None,
    request_id: str | None = None,
) -> M:
    """Apply attribute changes; identity fields (a bin's hub, an item's SKU) may only be repeated unchanged."""
    plans.lock_tenant(session, tenant_id)
    record = get_record(session, model, tenant_id, record_id)
    for field in IMMUTABLE.get(model, ()):
        if field in changes and changes.pop(field) != getattr(record, field):
            raise ValidationFailed(
                f"{field} identifies the {noun(model)} and cannot change; create a new {noun(model)} instead",
                reason="IMMUTABLE_FIELD",
                details=[{"field": field, "message": "immutable"}],
            )
    for field in ("name", "category_id"):
        if field in changes and changes[field] is None:
            raise ValidationFailed(
                f"{field} cannot be null", reason="BAD_REQUEST", details=[{"field": field, "message": "required"}]
            )
    if model is Item:
        if "category_id" in changes:
            _require_parent(session, Category, tenant_id, changes["category_id"], "category_id")
        if changes.get("default_bin_id") is not None:
            _require_parent(session, Bin, tenant_id, changes["default_bin_id"], "default_bin_id")
    applied = {k: v for k, v in changes.items() if getattr(record, k) != v}
    for field, value in applied.items():
        setattr(record, field, value)
    session.flush()
    if applied:
        _record(session, actor, tenant_id, f"{noun(model)}.updated", record.id, request_id=request_id, changes=applied)
    return record


def _in_use(session: Session, model: type[Any], tenant_id: str, record: Any) -> str | None:
    """Why deleting the record would strand live data, or None. Ledger history never blocks a delete."""
    live_lots = select(func.coalesce(func.sum(Lot.remaining_quantity), 0)).where(
        Lot.tenant_id == tenant_id,
        Lot.status == "live",
        Lot.remaining_quantity != 0,  # through ix_lots_on_hand
    )
    if model is Category:
        if session.scalar(
            select(Item.id)
            .where(Item.tenant_id == tenant_id, Item.category_id == record.id, Item.deleted_at.is_(None))
            .limit(1)
        ):
            return "live items belong to this category"
    elif model is Hub:
        if session.scalar(
            select(Bin.id).where(Bin.tenant_id == tenant_id, Bin.hub_id == record.id, Bin.deleted_at.is_(None)).limit(1)
        ):
            return "live bins belong to this hub"
    elif model is Bin:
        if session.scalar(
            select(Item.id)
            .where(Item.tenant_id == tenant_id, Item.default_bin_id == record.id, Item.deleted_at.is_(None))
            .limit(1)
        ):
            return "live items use this bin as their default bin"
        if session.scalar(live_lots.where(Lot.bin_id == record.id)):
            return "the bin holds stock"
    elif model is Item and session.scalar(live_lots.where(Lot.sku == record.sku)):
        return "the item has stock on hand"
    return None


def delete_record(
    session: Session,
    model: type[M],
    tenant_id: str,
    record_id: str,
    *,
    actor: Principal | None,
    request_id: str | None = None,
) -> None:
    """Soft delete: the record disappears from reads and lists; ledger history that names it stays."""
    plans.lock_tenant(session, tenant_id)
    record = get_record(session, model, tenant_id, record_id)
    reason = _in_use(session, model, tenant_id, record)
    if reason is not None:
        raise ValidationFailed(
            f"{noun(model)} '{record_id}' is in use: {reason}",
            reason="IN_USE",
            details=[{"field": "id", "message": reason}],
        )
    record.deleted_at = utcnow()
    session.flush()
    _record(session, actor, tenant_id, f"{noun(model)}.deleted", record.id, request_id=request_id)


def set_vendor_enabled(
    session: Session,
    tenant_id: str,
    vendor_id: str,
    enabled: bool,
    *,
    actor: Principal | None,
    request_id: str | None = None,
) -> Vendor:
    """Vendor eligibility for receiving. The row lock orders this against a receipt the worker is posting."""
    vendor = find_live(session, Vendor, tenant_id, vendor_id)
    if vendor is None:
        raise NotFound(f"vendor '{vendor_id}' not found")
    session.refresh(vendor, with_for_update=True)
    was = vendor.enabled
    vendor.enabled = enabled
    session.flush()
    action = "vendor.enabled" if enabled else "vendor.disabled"
    _record(session, actor, tenant_id, action, vendor.id, request_id=request_id, previously_enabled=was)
    return vendor


# --- shared checks for receipts and counts -------------------------------------------------------------


def _fail(errors: list[dict[str, Any]], what: str) -> ValidationFailed:
    reasons = sorted({e["reason"] for e in errors})
    return ValidationFailed(
        f"the {what} was refused: {len(errors)} problem(s) ({', '.join(reasons)}); nothing was written",
        reason=reasons[0] if len(reasons) == 1 else "MULTIPLE",
        details=errors[:1000],
    )


def _live_items(session: Session, tenant_id: str, skus: Sequence[str], *, share: bool) -> dict[str, Item]:
    query = select(Item).where(Item.tenant_id == tenant_id, Item.sku.in_(set(skus)), Item.deleted_at.is_(None))
    if share:
        query = query.with_for_update(read=True)
    return {item.sku: item for item in session.scalars(query)}


def _live_bins(session: Session, tenant_id: str, bin_ids: set[str], *, share: bool) -> set[str]:
    query = select(Bin.id).where(Bin.tenant_id == tenant_id, Bin.id.in_(bin_ids), Bin.deleted_at.is_(None))
    if share:
        query = query.with_for_update(read=True)
    return set(session.scalars(query))


def _unknown_sku(row: int, sku: str) -> dict[str, Any]:
    return {
        "row": row,
        "field": "sku",
        "reason": "UNKNOWN_SKU",
        "message": f"SKU '{sku}' is not an item of this tenant",
    }


# --- receiving ----------------------------------------------------------------------------------------


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


def _scaled(value: Decimal, scale: int) -> int:
    return int(value.scaleb(scale))


def _check_receipt(session: Session, tenant_id: str, receipt: ReceiptPayload, *, share: bool) -> list[_ReceiptLine]:
    """Every reason the receipt cannot be posted, with rows; or its lines with their bins resolved."""
    vendor = find_live(session, Vendor, tenant_id, receipt.vendor_id, share=share)
    if vendor is None:
        raise ValidationFailed(
            f"vendor '{receipt.vendor_id}' does not exist",
            reason="MISSING_PARENT",
            details=[_missing_parent("vendor_id", "vendor", receipt.vendor_id)],
        )
    if not vendor.enabled:
        raise ValidationFailed(
            f"vendor '{vendor.id}' is disabled; receiving from it is blocked",
            reason="VENDOR_DISABLED",
            details=[{"field": "vendor_id", "reason": "VENDOR_DISABLED", "message": "the vendor is disabled"}],
        )
    items = _live_items(session, tenant_id, [line.sku for line in receipt.lines], share=share)
    wanted_bins = {line.bin_id for line in receipt.lines if line.bin_id}
    wanted_bins |= {item.default_bin_id for item in items.values() if item.default_bin_id}
    bins = _live_bins(session, tenant_id, wanted_bins, share=share)
    errors: list[dict[str, Any]] = []
    resolved: list[_ReceiptLine] = []
    given_lots: dict[str, int] = {}
    for row, line in enumerate(receipt.lines, 1):
        item = items.get(line.sku)
        if item is None:
            errors.append(_unknown_sku(row, line.sku))
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
            errors.append(_missing_parent("bin_id", "bin", bin_id, row))
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
                quantity=_scaled(line.quantity, QTY_SCALE),
                unit_price=_scaled(line.unit_cost, COST_SCALE),
                freight=_scaled(line.freight_cost_per_unit, COST_SCALE),
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
        raise _fail(sorted(errors, key=lambda e: int(e.get("row", 0))), "receipt")
    return resolved


def submit_receipt(
    session: Session, *, tenant_id: str, actor: Principal, body: ReceiptCreate, request_id: str | None = None
) -> Job:
    """Check the receipt against the tenant's master data and accept it as a job (the worker posts it)."""
    payload = ReceiptPayload(vendor_id=body.vendor_id, received_at=body.received_at, lines=body.lines)
    _check_receipt(session, tenant_id, payload, share=False)
    job = jobs.accept_job(
        session, tenant_id=tenant_id, kind=JobKind.RECEIPT, payload=payload.model_dump(mode="json"), actor=actor
    )
    _record(
        session,
        actor,
        tenant_id,
        "receipt.accepted",
        job.id,
        request_id=request_id,
        job_id=job.id,
        vendor_id=body.vendor_id,
        lines=len(body.lines),
    )
    return job


def post_receipt(session: Session, job: Job) -> dict[str, Any]:
    """Write the receipt's RECEIPT events and lots, all or nothing. Runs under the tenant fence; the vendor,
    items and bins are share-locked so a concurrent disable or delete waits for this transaction."""
    receipt = ReceiptPayload.model_validate(job.payload)
    lines = _check_receipt(session, job.tenant_id, receipt, share=True)
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
    _insert_lots(
        session,
        job,
        [
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
        ],
    )
    return {
        "vendor_id": receipt.vendor_id,
        "lines": len(lines),
        "total_quantity": format_scaled(sum(line.quantity for line in lines), QTY_SCALE),
        "total_value": format_scaled(sum(e.amount for e in events), AMOUNT_SCALE),
        "first_seq": first_seq,
        "last_seq": last_seq,
    }


def _insert_lots(
    session: Session,
    job: Job,
    rows: list[tuple[str, str, str, str | None, datetime, int, int, int, int]],
) -> None:
    """New cost layers. A lot id whose earlier receipt was reversed by a rollback is received anew; a live
    one was refused by the checks."""
    insert_lots(session, job.tenant_id, NewLots.from_rows(rows, source_job_id=job.id))


# --- cycle counts -------------------------------------------------------------------------------------


def _check_count_lines(
    session: Session, tenant_id: str, bin_id: str, lines: Sequence[CountLineIn], *, share: bool
) -> None:
    if find_live(session, Bin, tenant_id, bin_id, share=share) is None:
        raise ValidationFailed(
            f"bin '{bin_id}' does not exist",
            reason="MISSING_PARENT",
            details=[_missing_parent("bin_id", "bin", bin_id)],
        )
    items = _live_items(session, tenant_id, [line.sku for line in lines], share=share)
    errors: list[dict[str, Any]] = []
    first_row: dict[str, int] = {}
    for row, line in enumerate(lines, 1):
        if line.sku not in items:
            errors.append(_unknown_sku(row, line.sku))
        elif line.sku in first_row:
            errors.append(
                {
                    "row": row,
                    "field": "sku",
                    "reason": "DUPLICATE_LINE",
                    "message": f"SKU '{line.sku}' is counted twice (rows {first_row[line.sku]} and {row})",
                }
            )
        else:
            first_row[line.sku] = row
    if errors:
        raise _fail(errors, "count")


@dataclass
class _BinLot:
    lot_id: str
    sku: str
    remaining: int
    unit_cost: int


def _bin_lots(
    session: Session, tenant_id: str, bin_id: str, skus: list[str], *, lock: bool
) -> dict[str, list[_BinLot]]:
    """Live lots with stock of these SKUs in the bin, oldest received first (the FIFO order)."""
    rows = session.execute(
        text(f"""
        SELECT lot_id, sku, remaining_quantity, unit_cost FROM lots
        WHERE tenant_id = :t AND bin_id = :b AND status = 'live' AND remaining_quantity > 0 AND sku = ANY(:skus)
        ORDER BY sku, received_at, lot_id {"FOR UPDATE" if lock else ""}"""),
        {"t": tenant_id, "b": bin_id, "skus": skus},
    ).all()
    out: dict[str, list[_BinLot]] = defaultdict(list)
    for lot_id, sku, remaining, cost in rows:
        out[sku].append(_BinLot(lot_id, sku, _scaled(remaining, QTY_SCALE), _scaled(cost, COST_SCALE)))
    return out


def _receipt_costs(session: Session, tenant_id: str, skus: list[str], as_of: datetime) -> dict[str, int]:
    """Each SKU's unit cost at its latest receipt (of a live lot) at or before `as_of`."""
    if not skus:
        return {}
    rows = session.execute(
        text("""
        SELECT DISTINCT ON (e.sku) e.sku, e.unit_cost FROM ledger_events e
        JOIN lots l ON l.tenant_id = e.tenant_id AND l.lot_id = e.lot_id AND l.receipt_seq = e.seq
        WHERE e.tenant_id = :t AND e.event_type = 'RECEIPT' AND e.sku = ANY(:skus) AND e.occurred_at <= :as_of
              AND l.status = 'live'
        ORDER BY e.sku, e.occurred_at DESC, e.seq DESC"""),
        {"t": tenant_id, "skus": skus, "as_of": as_of},
    ).all()
    return {sku: _scaled(cost, COST_SCALE) for sku, cost in rows}


def _no_cost_basis(row: int, sku: str) -> dict[str, Any]:
    return {
        "row": row,
        "field": "unit_cost",
        "reason": "NO_COST_BASIS",
        "message": f"SKU '{sku}' gained stock but has no receipt to value it by; give unit_cost on the line",
    }


def _gains_without_basis(
    count: CountPayload, lots: dict[str, list[_BinLot]], costs: dict[str, int]
) -> list[dict[str, Any]]:
    """Lines whose count exceeds the bin's stock, with no unit_cost given and no receipt to value them by."""
    return [
        _no_cost_basis(row, line.sku)
        for row, line in enumerate(count.lines, 1)
        if line.unit_cost is None
        and line.sku not in costs
        and _scaled(line.counted_quantity, QTY_SCALE) > sum(lot.remaining for lot in lots.get(line.sku, []))
    ]


def _skus(lines: Sequence[CountLineIn]) -> list[str]:
    return sorted({line.sku for line in lines})


def submit_count(
    session: Session, *, tenant_id: str, actor: Principal, body: CountCreate, request_id: str | None = None
) -> tuple[Count, Job]:
    """Accept a cycle count as a job. A gain that is certain to lack a cost basis is refused now; the
    worker decides everything else against the stock at execution time."""
    _check_count_lines(session, tenant_id, body.bin_id, body.lines, share=False)
    payload = CountPayload(count_id=new_id("cnt"), bin_id=body.bin_id, counted_at=body.counted_at, lines=body.lines)
    job = jobs.accept_job(
        session, tenant_id=tenant_id, kind=JobKind.COUNT, payload=payload.model_dump(mode="json"), actor=actor
    )
    # accept_job holds the tenant's counter row, so every job numbered before this one has committed: with
    # none of them pending, the stock this count will meet is the stock we see now.
    earlier_pending = session.scalar(
        select(Job.id)
        .where(Job.tenant_id == tenant_id, Job.seq < job.seq, Job.status.in_(("queued", "running")))
        .limit(1)
    )
    if earlier_pending is None:
        lots = _bin_lots(session, tenant_id, body.bin_id, _skus(body.lines), lock=False)
        costs = _receipt_costs(session, tenant_id, _skus(body.lines), body.counted_at)
        if errors := _gains_without_basis(payload, lots, costs):
            raise _fail(errors, "count")
    count = Count(
        id=payload.count_id, tenant_id=tenant_id, job_id=job.id, bin_id=body.bin_id, counted_at=body.counted_at
    )
    session.add(count)
    session.flush()
    _record(
        session,
        actor,
        tenant_id,
        "count.accepted",
        count.id,
        request_id=request_id,
        job_id=job.id,
        bin_id=body.bin_id,
        lines=len(body.lines),
    )
    return count, job


def post_count(session: Session, job: Job) -> dict[str, Any]:
    """Record expected vs counted per line and ledger the differences as ADJUSTMENT events: shrink consumes
    the bin's lots oldest first at their cost; a gain becomes a new lot `ADJ-<count id>-<line>`."""
    count = CountPayload.model_validate(job.payload)
    tenant_id = job.tenant_id
    _check_count_lines(session, tenant_id, count.bin_id, count.lines, share=True)
    lots = _bin_lots(session, tenant_id, count.bin_id, _skus(count.lines), lock=True)
    costs = _receipt_costs(session, tenant_id, _skus(count.lines), count.counted_at)
    if errors := _gains_without_basis(count, lots, costs):
        raise _fail(errors, "count")

    events: list[NewEvent] = []
    consumed: dict[str, int] = {}
    gains: list[tuple[str, str, int, int, int]] = []  # lot_id, sku, quantity, unit cost, event index
    line_rows = []
    for row, line in enumerate(count.lines, 1):
        available = lots.get(line.sku, [])
        expected = sum(lot.remaining for lot in available)
        counted = _scaled(line.counted_quantity, QTY_SCALE)
        difference = counted - expected
        amount = 0
        unit_cost: int | None = None
        if difference < 0:
            short = -difference
            for lot in available:
                take = min(short, lot.remaining)
                if take <= 0:
                    break
                events.append(
                    NewEvent(
                        "ADJUSTMENT",
                        line.sku,
                        lot.lot_id,
                        -take,
                        lot.unit_cost,
                        -take * lot.unit_cost,
                        count.counted_at,
                        reference=count.count_id,
                        bin_id=count.bin_id,
                    )
                )
                consumed[lot.lot_id] = consumed.get(lot.lot_id, 0) + take
                amount -= take * lot.unit_cost
                short -= take
        elif difference > 0:
            unit_cost = _scaled(line.unit_cost, COST_SCALE) if line.unit_cost is not None else costs[line.sku]
            lot_id = f"ADJ-{count.count_id}-{row}"
            gains.append((lot_id, line.sku, difference, unit_cost, len(events)))
            events.append(
                NewEvent(
                    "ADJUSTMENT",
                    line.sku,
                    lot_id,
                    difference,
                    unit_cost,
                    difference * unit_cost,
                    count.counted_at,
                    reference=count.count_id,
                    bin_id=count.bin_id,
                )
            )
            amount = difference * unit_cost
        line_rows.append(
            (
                count.count_id,
                row,
                tenant_id,
                line.sku,
                format_scaled(expected, QTY_SCALE),
                format_scaled(counted, QTY_SCALE),
                format_scaled(difference, QTY_SCALE),
                None if unit_cost is None else format_scaled(unit_cost, COST_SCALE),
                format_scaled(amount, AMOUNT_SCALE),
            )
        )

    first_seq, last_seq = append_events(session, tenant_id, events, job_id=job.id, run_id=None)
    if consumed:
        apply_deltas(session, tenant_id, [encode_deltas(list(consumed), [-q for q in consumed.values()])])
    if gains:
        _insert_lots(
            session,
            job,
            [
                (lot_id, sku, count.bin_id, None, count.counted_at, quantity, cost, 0, first_seq + index)
                for lot_id, sku, quantity, cost, index in gains
            ],
        )
    copy_rows(
        session,
        "count_lines",
        (
            "count_id",
            "line",
            "tenant_id",
            "sku",
            "expected_quantity",
            "counted_quantity",
            "difference",
            "unit_cost",
            "amount",
        ),
        line_rows,
    )
    return {
        "count_id": count.count_id,
        "lines": len(line_rows),
        "adjustments": len(events),
        "first_seq": first_seq or None,
        "last_seq": last_seq or None,
    }


def get_count(session: Session, tenant_id: str, count_id: str) -> dict[str, Any]:
    """A count with its status and lines: expected and difference once executed, as requested before."""
    if len(count_id) > MAX_ID_LENGTH or "\x00" in count_id:
        raise NotFound(f"count '{count_id}' not found")
    row = session.execute(
        select(Count, Job).join(Job, Job.id == Count.job_id).where(Count.id == count_id, Count.tenant_id == tenant_id)
    ).first()
    if row is None:
        raise NotFound(f"count '{count_id}' not found")
    count, job = row
    stored = session.scalars(
        select(CountLine)
        .where(CountLine.count_id == count.id, CountLine.tenant_id == tenant_id)
        .order_by(CountLine.line)
    ).all()
    if stored:
        lines = [
            {
                "line": line.line,
                "sku": line.sku,
                "counted_quantity": line.counted_quantity,
                "expected_quantity": line.expected_quantity,
                "difference": line.difference,
                "unit_cost": line.unit_cost,
                "amount": line.amount,
            }
            for line in stored
        ]
    else:
        requested = CountPayload.model_validate(job.payload).lines
        lines = [
            {
                "line": n,
                "sku": line.sku,
                "counted_quantity": line.counted_quantity,
                "expected_quantity": None,
                "difference": None,
                "unit_cost": line.unit_cost,
                "amount": None,
            }
            for n, line in enumerate(requested, 1)
        ]
    return {**_count_summary(count, job), "error": job.error, "lines": lines}


def _count_summary(count: Count, job: Job) -> dict[str, Any]:
    return {
        "id": count.id,
        "job_id": count.job_id,
        "bin_id": count.bin_id,
        "counted_at": count.counted_at,
        "status": job.status,
        "created_at": count.created_at,
    }


def list_counts(
    session: Session, tenant_id: str, *, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    query = select(Count, Job).join(Job, Job.id == Count.job_id).where(Count.tenant_id == tenant_id)
    rows, next_cursor = page(
        session, query, Count.id, limit=limit, cursor=cursor, scalars=False, key_of=lambda row: row[0].id
    )
    return [_count_summary(count, job) for count, job in rows], next_cursor
