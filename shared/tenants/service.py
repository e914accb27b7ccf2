"""Tenants, plans and API keys."""

from __future__ import annotations

import hashlib
import re
import secrets

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.auth import OPERATOR, ROLE_PERMISSIONS, Principal
from shared.base import new_id, utcnow
from shared.db import SYSTEM_SCOPE, set_tenant
from shared.errors import Conflict, Forbidden, NotFound, Unauthenticated, ValidationFailed
from shared.tenants.models import ApiKey, LedgerHead, Plan, PlanLimit, Tenant, TenantCounter

TENANT_ID_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
KEY_PREFIX = "asora_"


def hash_key(raw_key: str) -> str:
    # Keys are 256-bit random tokens, so a plain SHA-256 is a sufficient one-way hash (no dictionary to try).
    return hashlib.sha256(raw_key.encode()).hexdigest()


def validate_tenant_id(tenant_id: str) -> None:
    if not (3 <= len(tenant_id) <= 63 and TENANT_ID_PATTERN.match(tenant_id)):
        raise ValidationFailed(
            "tenant_id must be 3-63 characters of lowercase letters and digits, separated by single hyphens",
            reason="BAD_TENANT_ID",
            details=[{"field": "tenant_id", "message": "must match ^[a-z0-9]+(-[a-z0-9]+)*$"}],
        )


def _check_plan(session: Session, plan: str) -> None:
    if session.get(Plan, plan) is None:
        raise ValidationFailed(
            f"unknown plan '{plan}'",
            reason="UNKNOWN_PLAN",
            details=[{"field": "plan", "message": "free, pro or enterprise"}],
        )


def create_tenant(session: Session, *, tenant_id: str, name: str, plan: str, role_model: str) -> Tenant:
    validate_tenant_id(tenant_id)
    _check_plan(session, plan)
    if role_model not in ("standard", "simple"):
        raise ValidationFailed(
            f"unknown role model '{role_model}'",
            reason="UNKNOWN_ROLE_MODEL",
            details=[{"field": "role_model", "message": "standard or simple"}],
        )
    if session.get(Tenant, tenant_id) is not None:
        raise Conflict(f"tenant '{tenant_id}' already exists", reason="ALREADY_EXISTS")
    tenant = Tenant(id=tenant_id, name=name, plan=plan, role_model=role_model)
    session.add(tenant)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"tenant '{tenant_id}' already exists", reason="ALREADY_EXISTS") from exc
    session.add_all([TenantCounter(tenant_id=tenant_id), LedgerHead(tenant_id=tenant_id)])
    session.flush()
    return tenant


def get_tenant(session: Session, tenant_id: str) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"tenant '{tenant_id}' not found")
    return tenant


def change_plan(session: Session, tenant_id: str, plan: str) -> Tenant:
    _check_plan(session, plan)
    tenant = get_tenant(session, tenant_id)
    tenant.plan = plan
    session.flush()
    return tenant


def plan_limit(session: Session, tenant_id: str, limit_name: str) -> int | None:
    return session.scalar(
        select(PlanLimit.maximum)
        .join(Tenant, Tenant.plan == PlanLimit.plan)
        .where(Tenant.id == tenant_id, PlanLimit.limit_name == limit_name)
    )


def create_key(session: Session, *, tenant_id: str | None, role: str, name: str) -> tuple[ApiKey, str]:
    """Create a key; the raw secret is returned once and never stored."""
    if tenant_id is None:
        if role != OPERATOR:
            raise ValidationFailed("a key without a tenant must have role 'operator'", reason="BAD_ROLE")
    else:
        tenant = get_tenant(session, tenant_id)
        if role not in ROLE_PERMISSIONS[tenant.role_model]:
            raise ValidationFailed(
                f"role '{role}' does not exist in role model '{tenant.role_model}'",
                reason="BAD_ROLE",
                details=[{"field": "role", "message": ", ".join(ROLE_PERMISSIONS[tenant.role_model])}],
            )
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(id=new_id("key"), tenant_id=tenant_id, role=role, name=name, key_hash=hash_key(raw))
    session.add(key)
    session.flush()
    return key, raw


def revoke_key(session: Session, *, key_id: str, tenant_id: str | None) -> None:
    query = update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
    if tenant_id is not None:
        query = query.where(ApiKey.tenant_id == tenant_id)
    if session.execute(query.values(revoked_at=utcnow())).rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"key '{key_id}' not found")


def authenticate(session: Session, raw_key: str | None, requested_tenant: str | None) -> Principal:
    """Resolve a bearer key to a principal. Tenant keys are bound to their tenant; an operator names the
    tenant it acts on with X-Tenant-ID."""
    if not raw_key:
        raise Unauthenticated("missing API key", reason="MISSING_KEY")
    set_tenant(session, SYSTEM_SCOPE)  # the key decides the tenant, so the lookup spans tenants
    row = session.execute(
        select(ApiKey, Tenant.role_model)
        .outerjoin(Tenant, Tenant.id == ApiKey.tenant_id)
        .where(ApiKey.key_hash == hash_key(raw_key), ApiKey.revoked_at.is_(None))
    ).first()
    if row is None:
        raise Unauthenticated("unknown or revoked API key", reason="BAD_KEY")
    key, role_model = row
    if key.tenant_id is None:
        tenant_id = requested_tenant
        if tenant_id is not None and session.get(Tenant, tenant_id) is None:
            raise NotFound(f"tenant '{tenant_id}' not found")
        principal = Principal(key_id=key.id, role=key.role, role_model="platform", tenant_id=tenant_id)
    else:
        if requested_tenant is not None and requested_tenant != key.tenant_id:
            raise Forbidden("X-Tenant-ID names another tenant than the key's", reason="TENANT_MISMATCH")
        principal = Principal(key_id=key.id, role=key.role, role_model=role_model, tenant_id=key.tenant_id)
    set_tenant(session, principal.tenant_id or "")
    return principal


def ensure_operator_key(session: Session, raw_key: str, name: str = "bootstrap operator") -> None:
    """Make sure an operator key with exactly this secret exists (ASORA_BOOTSTRAP_OPERATOR_KEY)."""
    set_tenant(session, SYSTEM_SCOPE)
    digest = hash_key(raw_key)
    if session.scalar(select(ApiKey.id).where(ApiKey.key_hash == digest)) is None:
        session.add(ApiKey(id=new_id("key"), tenant_id=None, role=OPERATOR, name=name, key_hash=digest))
        session.flush()
