"""A tenant's costing settings (`GET`/`PATCH /settings`): each setting is one column of `tenants`, read by the
code it governs through `get_settings`, changed by owners only and audited with its previous value."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.audit import service as audit
from shared.auth import Principal
from shared.errors import REPOST_NEEDS_FIFO, Conflict
from shared.tenants.schemas import TenantSettings, TenantSettingsUpdate
from shared.tenants.service import get_tenant

SETTING_FIELDS = tuple(TenantSettings.model_fields)


def get_settings(session: Session, tenant_id: str) -> TenantSettings:
    return TenantSettings.model_validate(get_tenant(session, tenant_id))


def backdated_entries(session: Session, tenant_id: str) -> str:
    """`reject` or `repost`."""
    return get_settings(session, tenant_id).backdated_entries


def update_settings(
    session: Session, tenant_id: str, change: TenantSettingsUpdate, *, actor: Principal | None
) -> TenantSettings:
    """Apply the fields given (others keep their value) and audit what changed."""
    tenant = get_tenant(session, tenant_id)
    if change.backdated_entries == "repost" and tenant.backdated_entries != "repost":
        _refuse_repost_unless_fifo(session, tenant_id, tenant.valuation_method)
    changed: dict[str, Any] = {}
    for name, value in change.model_dump(exclude_none=True).items():
        previous = getattr(tenant, name)
        if previous != value:
            setattr(tenant, name, value)
            changed[name] = {"value": value, "previous": previous}
    session.flush()
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="tenant.settings_changed",
        target=tenant_id,
        outcome="ok",
        details={"changed": changed},
    )
    return TenantSettings.model_validate(tenant)


def _refuse_repost_unless_fifo(session: Session, tenant_id: str, default_method: str) -> None:
    """A repost re-costs by FIFO: `repost` needs the default and every SKU's method to be FIFO."""
    held = session.scalars(
        text("SELECT sku FROM sku_valuation_methods WHERE tenant_id = :t AND method <> 'fifo' ORDER BY sku LIMIT 20"),
        {"t": tenant_id},
    ).all()
    if default_method != "fifo" or held:
        raise Conflict(
            "backdated_entries = repost re-costs by FIFO, but the tenant's default method is "
            f"{default_method}" + (f" and SKUs are held to other methods ({', '.join(held)})" if held else ""),
            reason=REPOST_NEEDS_FIFO,
            details=[{"default_method": default_method, "skus": list(held)}],
        )
