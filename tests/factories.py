"""Factories for service tests on `db_session` (tests/conftest.py): each writes through the domain's own service,
as an edge would, and returns what a test needs next. Nothing here commits; the test's outer transaction is
rolled back afterwards. (The factories for tests that drive a stack over HTTP are in tests/support.py.)"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.audit.models import AuditEvent
from shared.auth import OPERATOR, Principal
from shared.base import utcnow
from shared.inventory import master, receipts
from shared.inventory.models import Bin, Category, Hub, Item, Vendor
from shared.inventory.schemas import ReceiptCreate
from shared.jobs import service as jobs
from shared.jobs.kinds import JobStatus
from shared.jobs.models import Job
from shared.tenants import service as tenants


def new_tenant_id(prefix: str = "t") -> str:
    """An id no other test uses (tenants live in one database; hubs' and bins' ids are global too)."""
    return f"{prefix}-{secrets.token_hex(4)}"


def tenant(session: Session, *, plan: str = "enterprise", role_model: str = "standard", prefix: str = "t") -> str:
    """A new tenant with its counters. The session is left scoped to it, as `create_tenant` leaves it."""
    new = new_tenant_id(prefix)
    tenants.create_tenant(session, tenant_id=new, name=new, plan=plan, role_model=role_model, actor=None)
    return new


def principal(tenant_id: str | None, role: str = "owner", *, role_model: str = "standard") -> Principal:
    """Who a service call acts as; an operator (no tenant, or the tenant it names) without a key row."""
    if role == OPERATOR:
        return Principal(key_id="key_test_operator", role=OPERATOR, role_model="platform", tenant_id=tenant_id)
    return Principal(key_id=f"key_test_{role}", role=role, role_model=role_model, tenant_id=tenant_id)


def category(session: Session, tenant_id: str, name: str = "general") -> Category:
    return master.create_record(session, Category, tenant_id, {"name": name}, actor=None)


def hub(session: Session, tenant_id: str, name: str = "main") -> Hub:
    return master.create_record(session, Hub, tenant_id, {"name": name}, actor=None)


def bin_(session: Session, tenant_id: str, hub_id: str | None = None, name: str = "A-01") -> Bin:
    """A bin, in `hub_id` or in a new hub."""
    hub_id = hub_id or hub(session, tenant_id).id
    return master.create_record(session, Bin, tenant_id, {"hub_id": hub_id, "name": name}, actor=None)


def vendor(session: Session, tenant_id: str, name: str = "Acme Supply", *, enabled: bool = True) -> Vendor:
    record = master.create_record(session, Vendor, tenant_id, {"name": name}, actor=None)
    if not enabled:
        master.set_vendor_enabled(session, tenant_id, record.id, False, actor=None)
    return record


def item(
    session: Session,
    tenant_id: str,
    sku: str = "WIDGET-A",
    *,
    category_id: str | None = None,
    default_bin_id: str | None = None,
) -> Item:
    """An item, in `category_id` or in a new category."""
    values = {
        "sku": sku,
        "name": sku,
        "category_id": category_id or category(session, tenant_id).id,
        "default_bin_id": default_bin_id,
    }
    return master.create_record(session, Item, tenant_id, values, actor=None)


@dataclass(frozen=True)
class MasterData:
    """One category, hub, bin and vendor, and items by SKU whose default bin is that bin."""

    category_id: str
    hub_id: str
    bin_id: str
    vendor_id: str
    items: dict[str, str]


def master_data(session: Session, tenant_id: str, skus: Sequence[str] = ("WIDGET-A",)) -> MasterData:
    """Master data in the runbook's onboarding order: categories, hubs, bins, vendors, items."""
    category_ = category(session, tenant_id)
    hub_ = hub(session, tenant_id)
    bin_row = bin_(session, tenant_id, hub_.id)
    vendor_ = vendor(session, tenant_id)
    items = {sku: item(session, tenant_id, sku, category_id=category_.id, default_bin_id=bin_row.id).id for sku in skus}
    return MasterData(category_.id, hub_.id, bin_row.id, vendor_.id, items)


def receipt_body(
    vendor_id: str, lines: Sequence[dict[str, Any]], received_at: str = "2024-07-01T00:00:00Z"
) -> ReceiptCreate:
    return ReceiptCreate.model_validate({"vendor_id": vendor_id, "received_at": received_at, "lines": list(lines)})


def received(
    session: Session,
    tenant_id: str,
    vendor_id: str,
    lines: Sequence[dict[str, Any]],
    received_at: str = "2024-07-01T00:00:00Z",
) -> Job:
    """A receipt accepted and posted in this session, its job left completed as the runner leaves it (so it
    is no longer pending for a later intake to wait on)."""
    accepted = receipts.submit_receipt(
        session, tenant_id=tenant_id, actor=principal(tenant_id), body=receipt_body(vendor_id, lines, received_at)
    )
    jobs.number_pending(session)
    session.flush()
    job = session.get(Job, accepted.id)
    assert job is not None
    job.result = receipts.post_receipt(session, job)
    job.status, job.finished_at = JobStatus.COMPLETED, utcnow()
    session.flush()
    return job


# --- reading back ------------------------------------------------------------------------------------------


def audit_trail(session: Session, tenant_id: str | None, action: str | None = None) -> list[AuditEvent]:
    """The audit events of one tenant (None: the platform's), oldest first; the session must see them."""
    query = select(AuditEvent).where(
        AuditEvent.tenant_id.is_(None) if tenant_id is None else AuditEvent.tenant_id == tenant_id
    )
    if action is not None:
        query = query.where(AuditEvent.action == action)
    return list(session.scalars(query.order_by(AuditEvent.id)))
