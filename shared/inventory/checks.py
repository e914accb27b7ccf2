"""What master data, receipts and counts share: live items by SKU, the details a refusal carries (a missing
parent, an unknown SKU), the all-or-nothing refusal of a receipt or count with every row's problem, and the
audit event of a write that succeeded."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.audit import service as audit
from shared.auth import Principal
from shared.errors import ValidationFailed
from shared.inventory.models import Item

MAX_DETAILS = 1000


def missing_parent(field: str, noun_: str, ref: str, row: int | None = None) -> dict[str, Any]:
    detail: dict[str, Any] = {"field": field, "reason": "MISSING_PARENT", "message": f"{noun_} '{ref}' does not exist"}
    if row is not None:
        detail["row"] = row
    return detail


def unknown_sku(row: int, sku: str) -> dict[str, Any]:
    return {
        "row": row,
        "field": "sku",
        "reason": "UNKNOWN_SKU",
        "message": f"SKU '{sku}' is not an item of this tenant",
    }


def refusal(errors: list[dict[str, Any]], what: str) -> ValidationFailed:
    """The refusal of a whole receipt or count: one reason, or MULTIPLE, and the first rows' details."""
    reasons = sorted({e["reason"] for e in errors})
    return ValidationFailed(
        f"the {what} was refused: {len(errors)} problem(s) ({', '.join(reasons)}); nothing was written",
        reason=reasons[0] if len(reasons) == 1 else "MULTIPLE",
        details=errors[:MAX_DETAILS],
    )


def live_items(session: Session, tenant_id: str, skus: Sequence[str], *, share: bool) -> dict[str, Item]:
    query = select(Item).where(Item.tenant_id == tenant_id, Item.sku.in_(set(skus)), Item.deleted_at.is_(None))
    if share:
        query = query.with_for_update(read=True)
    return {item.sku: item for item in session.scalars(query)}


def scaled(value: Decimal, scale: int) -> int:
    return int(value.scaleb(scale))


def audit_ok(session: Session, actor: Principal | None, tenant_id: str, action: str, target: str, **extra: Any) -> None:
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
