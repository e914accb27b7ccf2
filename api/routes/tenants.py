"""Tenants (operator) and API keys (owner, or operator for any tenant)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import PrincipalDep, SessionDep, tenant_of
from shared.audit import service as audit
from shared.auth import Permission
from shared.db import SYSTEM_SCOPE, set_tenant
from shared.tenants import service as tenants
from shared.tenants.schemas import KeyCreate, KeyCreated, TenantCreate, TenantOut, TenantPlanUpdate

router = APIRouter(tags=["tenants"])


@router.post("/tenants", status_code=201, response_model=TenantOut)
def create_tenant(body: TenantCreate, session: SessionDep, principal: PrincipalDep) -> TenantOut:
    principal.require(Permission.TENANTS_MANAGE)
    set_tenant(session, SYSTEM_SCOPE)
    tenant = tenants.create_tenant(
        session, tenant_id=body.tenant_id, name=body.name, plan=body.plan, role_model=body.role_model
    )
    audit.record(
        session,
        tenant_id=tenant.id,
        actor=principal,
        action="tenant.created",
        target=tenant.id,
        outcome="ok",
        details={"plan": body.plan, "role_model": body.role_model},
    )
    out = TenantOut.model_validate(tenant)
    session.commit()
    return out


@router.put("/tenants/{tenant_id}/plan", response_model=TenantOut)
def change_plan(tenant_id: str, body: TenantPlanUpdate, session: SessionDep, principal: PrincipalDep) -> TenantOut:
    principal.require(Permission.TENANTS_MANAGE)
    set_tenant(session, SYSTEM_SCOPE)
    tenant = tenants.change_plan(session, tenant_id, body.plan)
    audit.record(
        session,
        tenant_id=tenant.id,
        actor=principal,
        action="tenant.plan_changed",
        target=tenant.id,
        outcome="ok",
        details={"plan": body.plan},
    )
    out = TenantOut.model_validate(tenant)
    session.commit()
    return out


@router.post("/keys", status_code=201, response_model=KeyCreated)
def create_key(body: KeyCreate, session: SessionDep, principal: PrincipalDep) -> KeyCreated:
    principal.require(Permission.KEYS_MANAGE)
    tenant_id = tenant_of(principal)
    key, raw = tenants.create_key(session, tenant_id=tenant_id, role=body.role, name=body.name)
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=principal,
        action="key.created",
        target=key.id,
        outcome="ok",
        details={"role": key.role, "name": key.name},
    )
    session.commit()
    return KeyCreated(id=key.id, key=raw, role=key.role, name=key.name, tenant_id=tenant_id)


@router.delete("/keys/{key_id}", status_code=204)
def revoke_key(key_id: str, session: SessionDep, principal: PrincipalDep) -> Response:
    principal.require(Permission.KEYS_MANAGE)
    tenant_id = tenant_of(principal)
    tenants.revoke_key(session, key_id=key_id, tenant_id=tenant_id)
    audit.record(session, tenant_id=tenant_id, actor=principal, action="key.revoked", target=key_id, outcome="ok")
    session.commit()
    return Response(status_code=204)
