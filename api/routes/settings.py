"""The tenant's costing settings: anyone may read them; owners change them (audited)."""

from __future__ import annotations

from typing import Annotated

from api.deps import Reader, SettingsManager, TenantSession, api_router, json_body, tenant_of
from shared.tenants import settings
from shared.tenants.schemas import TenantSettings, TenantSettingsUpdate

router = api_router(prefix="/settings", tags=["settings"])


@router.get("", response_model=TenantSettings, operation_id="settings_get")
def get_settings(principal: Reader, session: TenantSession) -> TenantSettings:
    return settings.get_settings(session, tenant_of(principal))


@router.patch("", response_model=TenantSettings, operation_id="settings_update")
def update_settings(
    principal: SettingsManager,
    session: TenantSession,
    body: Annotated[TenantSettingsUpdate, json_body(TenantSettingsUpdate)],
) -> TenantSettings:
    return settings.update_settings(session, tenant_of(principal), body, actor=principal)
