"""Master data: categories, hubs, bins, vendors and items. Create, read, list, update, soft delete, and vendor
eligibility, with plan ceilings.

Every write first takes the tenant's row lock (`plans.lock_tenant`), so plan ceilings and parent/child checks
see a stable picture: two creations at a ceiling cannot both pass, and a parent cannot be deleted while a
child is being attached to it.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.auth import Principal
from shared.base import new_id, utcnow
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.inventory import checks
from shared.inventory.models import Bin, Category, Hub, Item, Vendor
from shared.ledger.models import Lot
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
            details=[checks.missing_parent(field, noun(model), ref)],
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
    checks.audit_ok(session, actor, tenant_id, f"{kind}.created", record.id, request_id=request_id, values=values)
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
        checks.audit_ok(
            session, actor, tenant_id, f"{noun(model)}.updated", record.id, request_id=request_id, changes=applied
        )
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
    checks.audit_ok(session, actor, tenant_id, f"{noun(model)}.deleted", record.id, request_id=request_id)


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
    checks.audit_ok(session, actor, tenant_id, action, vendor.id, request_id=request_id, previously_enabled=was)
    return vendor
