"""A tenant's costing settings (`GET`/`PATCH /settings`): each setting is one column of `tenants`, read by the
code it governs through `get_settings`, changed by owners only and audited with its previous value."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from shared.audit import service as audit
from shared.auth import Principal
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
