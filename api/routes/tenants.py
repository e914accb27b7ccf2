"""Tenants (operator) and API keys (owner, or operator for any tenant)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Response

from api.deps import KeysManager, SessionDep, TenantId, TenantSession, TenantsManager, api_router, json_body, tenant_of
from api.openapi import errors
from shared.tenants import service as tenants
from shared.tenants.schemas import KeyCreate, KeyCreated, TenantCreate, TenantOut, TenantPlanUpdate

router = api_router(tags=["tenants"])


@router.post(
    "/tenants", status_code=201, response_model=TenantOut, operation_id="tenants_create", responses=errors(409)
)
def create_tenant(
    principal: TenantsManager, session: SessionDep, body: Annotated[TenantCreate, json_body(TenantCreate)]
) -> TenantOut:
    tenant = tenants.create_tenant(
        session, tenant_id=body.tenant_id, name=body.name, plan=body.plan, role_model=body.role_model, actor=principal
    )
    return TenantOut.model_validate(tenant)


@router.put("/tenants/{tenant_id}/plan", response_model=TenantOut, operation_id="tenants_change_plan")
def change_plan(
    tenant_id: str,
    principal: TenantsManager,
    session: SessionDep,
    body: Annotated[TenantPlanUpdate, json_body(TenantPlanUpdate)],
) -> TenantOut:
    return TenantOut.model_validate(tenants.change_plan(session, tenant_id, body.plan, actor=principal))


@router.post("/keys", status_code=201, response_model=KeyCreated, operation_id="keys_create")
def create_key(
    principal: KeysManager,
    tenant: TenantId,
    session: TenantSession,
    body: Annotated[KeyCreate, json_body(KeyCreate)],
) -> KeyCreated:
    key, raw = tenants.create_key(session, tenant_id=tenant, role=body.role, name=body.name, actor=principal)
    return KeyCreated(id=key.id, key=raw, role=key.role, name=key.name, tenant_id=tenant)


@router.delete("/keys/{key_id}", status_code=204, operation_id="keys_revoke")
def revoke_key(key_id: str, principal: KeysManager, session: TenantSession) -> Response:
    tenants.revoke_key(session, key_id=key_id, tenant_id=tenant_of(principal), actor=principal)
    return Response(status_code=204)
