"""Tenants, plans and API keys: onboarding, plan changes, key issue and revocation (each audited here), and
resolving a bearer key to the principal a request acts as."""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time

from sqlalchemy import text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared import db
from shared.audit import service as audit
from shared.auth import OPERATOR, ROLE_PERMISSIONS, Principal
from shared.base import new_id, utcnow
from shared.config import get_settings
from shared.errors import Conflict, Forbidden, NotFound, Unauthenticated, ValidationFailed
from shared.tenants.models import ApiKey, LedgerHead, Plan, Tenant, TenantCounter

TENANT_ID_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
KEY_PREFIX = "asora_"
ROLE_MODELS = ("standard", "simple")


def hash_key(raw_key: str) -> str:
    # Keys are 256-bit random tokens, so a plain SHA-256 is a sufficient one-way hash (no dictionary to try).
    return hashlib.sha256(raw_key.encode()).hexdigest()


def validate_tenant_id(tenant_id: str) -> None:
    if not (3 <= len(tenant_id) <= 63 and TENANT_ID_PATTERN.fullmatch(tenant_id)):
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


def create_tenant(
    session: Session, *, tenant_id: str, name: str, plan: str, role_model: str, actor: Principal | None
) -> Tenant:
    """Onboard a tenant with its counters. The transaction acts in the new tenant's own scope: it is the one
    operation whose tenant does not exist before it."""
    validate_tenant_id(tenant_id)
    if role_model not in ROLE_MODELS:
        raise ValidationFailed(
            f"unknown role model '{role_model}'",
            reason="UNKNOWN_ROLE_MODEL",
            details=[{"field": "role_model", "message": "standard or simple"}],
        )
    db.scope_session(session, tenant_id)
    _check_plan(session, plan)
    if session.get(Tenant, tenant_id) is not None:
        raise Conflict(f"tenant '{tenant_id}' already exists", reason="ALREADY_EXISTS")
    tenant = Tenant(id=tenant_id, name=name, plan=plan, role_model=role_model)
    session.add(tenant)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise Conflict(f"tenant '{tenant_id}' already exists", reason="ALREADY_EXISTS") from exc
    session.add_all([TenantCounter(tenant_id=tenant_id), LedgerHead(tenant_id=tenant_id)])
    session.flush()
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="tenant.created",
        target=tenant_id,
        outcome="ok",
        details={"plan": plan, "role_model": role_model},
    )
    return tenant


def get_tenant(session: Session, tenant_id: str) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"tenant '{tenant_id}' not found")
    return tenant


def change_plan(session: Session, tenant_id: str, plan: str, *, actor: Principal | None) -> Tenant:
    """Move a tenant to another plan (in the tenant's scope). Ceilings of the new plan apply to what is created
    from now on; nothing already created is removed."""
    db.scope_session(session, tenant_id)
    _check_plan(session, plan)
    tenant = get_tenant(session, tenant_id)
    previous = tenant.plan
    tenant.plan = plan
    session.flush()
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="tenant.plan_changed",
        target=tenant_id,
        outcome="ok",
        details={"plan": plan, "previous_plan": previous},
    )
    return tenant


def create_key(
    session: Session, *, tenant_id: str | None, role: str, name: str, actor: Principal | None
) -> tuple[ApiKey, str]:
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
    if tenant_id is None:
        # An operator key belongs to no tenant: the system login writes it and its audit row
        # (`asora_sys_create_operator_key`, migration 0013); `session` is unit_of_work(SYSTEM_SCOPE)'s.
        session.execute(
            text("SELECT asora_sys_create_operator_key(:id, :name, :hash, :actor_key_id, :actor_role)"),
            {
                "id": key.id,
                "name": name,
                "hash": key.key_hash,
                "actor_key_id": actor.key_id if actor else None,
                "actor_role": actor.role if actor else None,
            },
        )
        return key, raw
    session.add(key)
    session.flush()
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="key.created",
        target=key.id,
        outcome="ok",
        details={"role": role, "name": name},
    )
    return key, raw


def revoke_key(session: Session, *, key_id: str, tenant_id: str | None, actor: Principal | None) -> None:
    """Revoke a key. Every API process stops accepting it once its cached lookup expires
    (`api_key_cache_seconds`, at most 5 s)."""
    query = update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
    if tenant_id is not None:
        query = query.where(ApiKey.tenant_id == tenant_id)
    if session.execute(query.values(revoked_at=utcnow())).rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"key '{key_id}' not found")
    audit.record(session, tenant_id=tenant_id, actor=actor, action="key.revoked", target=key_id, outcome="ok")


# --- authentication ---------------------------------------------------------------------------------------


class _KeyCache:
    """Recently resolved keys (digest -> principal without X-Tenant-ID, expiry), so a busy client costs no
    database round trip per request. Entries live `api_key_cache_seconds`: a revoked key stops working within
    that time in every process. Unknown keys are never cached."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Principal, float]] = {}
        self._tenants: set[str] = set()  # tenants seen to exist (tenants are never deleted)
        self._lock = threading.Lock()

    def get(self, digest: str) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def put(self, digest: str, principal: Principal, ttl: float) -> None:
        with self._lock:
            if len(self._entries) > 10_000:
                now = time.monotonic()
                self._entries = {k: v for k, v in self._entries.items() if v[1] >= now}
            self._entries[digest] = (principal, time.monotonic() + ttl)

    def tenant_known(self, tenant_id: str) -> bool:
        return tenant_id in self._tenants

    def remember_tenant(self, tenant_id: str) -> None:
        self._tenants.add(tenant_id)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._tenants.clear()


key_cache = _KeyCache()


def _lookup(digest: str) -> Principal | None:
    """The key's principal (an operator's without a tenant). Keys are looked up across tenants, in a
    transaction of their own, by `asora_key_principal` (migration 0013): the one cross-tenant function the
    tenant login may call, since it answers only for a key whose hash the caller already holds."""
    with db.unit_of_work() as session:
        row = session.execute(
            text("SELECT id, role, tenant_id, role_model FROM asora_key_principal(:hash)"), {"hash": digest}
        ).first()
    if row is None:
        return None
    key_id, role, tenant_id, role_model = row
    if tenant_id is None:
        return Principal(key_id=key_id, role=role, role_model="platform", tenant_id=None)
    return Principal(key_id=key_id, role=role, role_model=role_model, tenant_id=tenant_id)


def _tenant_exists(tenant_id: str) -> bool:
    if key_cache.tenant_known(tenant_id):
        return True
    with db.unit_of_work(tenant_id) as session:
        exists = session.get(Tenant, tenant_id) is not None
    if exists:
        key_cache.remember_tenant(tenant_id)
    return exists


def authenticate(raw_key: str | None, requested_tenant: str | None) -> Principal:
    """Resolve a bearer key to a principal. Tenant keys are bound to their tenant; an operator names the
    tenant it acts on with X-Tenant-ID."""
    if not raw_key:
        raise Unauthenticated("missing API key", reason="MISSING_KEY")
    digest = hash_key(raw_key)
    principal = key_cache.get(digest)
    if principal is None:
        principal = _lookup(digest)
        if principal is None:
            raise Unauthenticated("unknown or revoked API key", reason="BAD_KEY")
        key_cache.put(digest, principal, get_settings().api_key_cache_seconds)
    if principal.tenant_id is None:
        if requested_tenant is None:
            return principal
        if len(requested_tenant) > 63 or not _tenant_exists(requested_tenant):
            raise NotFound(f"tenant '{requested_tenant[:63]}' not found")
        return Principal(
            key_id=principal.key_id, role=principal.role, role_model="platform", tenant_id=requested_tenant
        )
    if requested_tenant is not None and requested_tenant != principal.tenant_id:
        raise Forbidden("X-Tenant-ID names another tenant than the key's", reason="TENANT_MISMATCH")
    return principal


def ensure_operator_key(session: Session, raw_key: str, name: str = "bootstrap operator") -> None:
    """Make sure an operator key with exactly this secret exists (ASORA_BOOTSTRAP_OPERATOR_KEY). Every API
    process does this as it starts, at the same moment: the first insert wins and the others find it."""
    session.execute(
        text("SELECT asora_sys_ensure_operator_key(:id, :name, :hash)"),
        {"id": new_id("key"), "name": name, "hash": hash_key(raw_key)},
    )
