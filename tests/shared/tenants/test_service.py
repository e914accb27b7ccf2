"""Tenants and keys on the service: onboarding and its refusals, plan changes and key issue and revocation with
their audit events (a raw key is never stored, only its SHA-256), and resolving a bearer key to a principal,
including how long a revoked key may outlive its revocation in the key cache."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from shared import db
from shared.audit.models import AuditEvent
from shared.auth import Principal
from shared.config import get_settings
from shared.errors import Conflict, DomainError, Forbidden, NotFound, Unauthenticated, ValidationFailed
from shared.tenants import service as tenants
from shared.tenants.models import ApiKey, LedgerHead, Tenant, TenantCounter
from tests import factories
from tests.support import owner_unit

OPERATOR = factories.principal(None, "operator")


def test_create_tenant_writes_the_tenant_its_counters_and_an_audit_event(db_session: Session) -> None:
    tenant_id = factories.new_tenant_id()
    tenant = tenants.create_tenant(
        db_session, tenant_id=tenant_id, name="Acme", plan="pro", role_model="simple", actor=OPERATOR
    )
    assert (tenant.id, tenant.name, tenant.plan, tenant.role_model) == (tenant_id, "Acme", "pro", "simple")
    assert db_session.get(TenantCounter, tenant_id).job_seq == 0  # type: ignore[union-attr]
    head = db_session.get(LedgerHead, tenant_id)
    assert head is not None
    assert (head.seq, head.hash) == (0, "0" * 64)
    [event] = factories.audit_trail(db_session, tenant_id)
    assert (event.action, event.target, event.outcome) == ("tenant.created", tenant_id, "ok")
    assert (event.actor_key_id, event.actor_role) == (OPERATOR.key_id, "operator")
    assert event.details == {"plan": "pro", "role_model": "simple"}


@pytest.mark.parametrize("tenant_id", ["abc", "a" * 63, "a1-b2-c3", "0-0"])
def test_tenant_ids_at_the_edges_of_the_pattern_are_accepted(db_session: Session, tenant_id: str) -> None:
    tenants.validate_tenant_id(tenant_id)


@pytest.mark.parametrize(
    "tenant_id",
    [
        *("ab", "a" * 64, "Acme", "a--b", "-ab", "ab-", "a_b", "a b", "a.b", "é-tenant", "", "abc\nabc"),
        # `TENANT_ID_PATTERN.match` lets `$` match before a final newline; fullmatch (or \Z) would refuse it.
        "abc\n",  # re.match would let "$" match before a trailing newline: the id is fullmatched
    ],
)
def test_a_bad_tenant_id_is_refused_before_anything_is_written(db_session: Session, tenant_id: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        tenants.create_tenant(db_session, tenant_id=tenant_id, name="x", plan="free", role_model="standard", actor=None)
    assert refused.value.reason == "BAD_TENANT_ID"
    assert refused.value.details[0]["field"] == "tenant_id"
    db.scope_session(db_session, tenant_id)
    assert db_session.get(Tenant, tenant_id) is None


@pytest.mark.parametrize(
    ("plan", "role_model", "reason"),
    [
        ("gold", "standard", "UNKNOWN_PLAN"),
        ("", "standard", "UNKNOWN_PLAN"),
        ("free", "platform", "UNKNOWN_ROLE_MODEL"),
    ],
)
def test_unknown_plans_and_role_models_are_refused(
    db_session: Session, plan: str, role_model: str, reason: str
) -> None:
    tenant_id = factories.new_tenant_id()
    with pytest.raises(ValidationFailed) as refused:
        tenants.create_tenant(db_session, tenant_id=tenant_id, name="x", plan=plan, role_model=role_model, actor=None)
    assert refused.value.reason == reason
    assert db_session.get(Tenant, tenant_id) is None


def test_a_tenant_id_is_onboarded_once(db_session: Session) -> None:
    tenant_id = factories.tenant(db_session, plan="free")
    with pytest.raises(Conflict) as refused:
        tenants.create_tenant(
            db_session, tenant_id=tenant_id, name="again", plan="pro", role_model="simple", actor=None
        )
    assert refused.value.reason == "ALREADY_EXISTS"
    tenant = db_session.get(Tenant, tenant_id)
    assert tenant is not None
    assert (tenant.plan, tenant.role_model) == ("free", "standard")
    assert [e.action for e in factories.audit_trail(db_session, tenant_id)] == ["tenant.created"]


def test_change_plan_is_audited_with_the_previous_plan(db_session: Session) -> None:
    tenant_id = factories.tenant(db_session, plan="free")
    assert tenants.change_plan(db_session, tenant_id, "pro", actor=OPERATOR).plan == "pro"
    tenants.change_plan(db_session, tenant_id, "enterprise", actor=OPERATOR)
    changes = factories.audit_trail(db_session, tenant_id, "tenant.plan_changed")
    assert [e.details for e in changes] == [
        {"plan": "pro", "previous_plan": "free"},
        {"plan": "enterprise", "previous_plan": "pro"},
    ]
    assert {(e.target, e.actor_role) for e in changes} == {(tenant_id, "operator")}


def test_change_plan_refuses_an_unknown_plan_or_tenant(db_session: Session) -> None:
    tenant_id = factories.tenant(db_session, plan="free")
    with pytest.raises(ValidationFailed) as refused:
        tenants.change_plan(db_session, tenant_id, "platinum", actor=OPERATOR)
    assert refused.value.reason == "UNKNOWN_PLAN"
    assert tenants.get_tenant(db_session, tenant_id).plan == "free"
    with pytest.raises(NotFound):
        tenants.change_plan(db_session, factories.new_tenant_id(), "pro", actor=OPERATOR)
    assert factories.audit_trail(db_session, tenant_id, "tenant.plan_changed") == []


# --- keys -------------------------------------------------------------------------------------------------


def test_a_key_is_stored_only_as_its_sha256_and_its_issue_is_audited(db_session: Session) -> None:
    tenant_id = factories.tenant(db_session)
    key, raw = tenants.create_key(db_session, tenant_id=tenant_id, role="clerk", name="till 1", actor=OPERATOR)
    assert raw.startswith(tenants.KEY_PREFIX)
    assert len(raw) > 40
    assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    stored = db_session.execute(text("SELECT * FROM api_keys WHERE id = :id"), {"id": key.id}).one()
    assert key.key_hash in stored
    assert not any(raw in str(value) or raw[len(tenants.KEY_PREFIX) :] in str(value) for value in stored)
    [event] = factories.audit_trail(db_session, tenant_id, "key.created")
    assert (event.target, event.actor_role, event.details) == (key.id, "operator", {"role": "clerk", "name": "till 1"})
    assert raw[len(tenants.KEY_PREFIX) :] not in json.dumps(
        [e.details for e in factories.audit_trail(db_session, tenant_id)]
    )


@pytest.mark.parametrize(
    ("role_model", "role", "tenant_bound"),
    [
        ("simple", "clerk", True),  # a role of the other model
        ("standard", "member", True),
        ("standard", "operator", True),  # an operator key is never bound to a tenant
        ("standard", "owner", False),  # a key without a tenant is an operator's
    ],
)
def test_a_role_the_keys_holder_cannot_have_is_refused(
    db_session: Session, role_model: str, role: str, tenant_bound: bool
) -> None:
    tenant_id = factories.tenant(db_session, role_model=role_model)
    with pytest.raises(ValidationFailed) as refused:
        tenants.create_key(
            db_session, tenant_id=tenant_id if tenant_bound else None, role=role, name="x", actor=OPERATOR
        )
    assert refused.value.reason == "BAD_ROLE"
    assert db_session.scalars(select(ApiKey.id).where(ApiKey.name == "x")).all() == []


def test_an_operator_key_has_no_tenant_and_only_the_system_login_writes_it(
    db_session: Session, service_urls: dict[str, str]
) -> None:
    with pytest.raises(DBAPIError, match="permission denied for function"), db_session.begin_nested():
        tenants.create_key(db_session, tenant_id=None, role="operator", name="ops", actor=None)
    with db.unit_of_work(db.SYSTEM_SCOPE) as system:  # committed, in this run's scratch database
        key, raw = tenants.create_key(system, tenant_id=None, role="operator", name="ops", actor=OPERATOR)
    assert key.tenant_id is None
    with owner_unit() as owner:
        assert owner.scalar(select(ApiKey.tenant_id).where(ApiKey.id == key.id)) is None
        [event] = owner.scalars(select(AuditEvent).where(AuditEvent.target == key.id)).all()
    assert (event.tenant_id, event.action, event.actor_role) == (None, "key.created", "operator")
    assert event.details == {"role": "operator", "name": "ops"}
    assert tenants.authenticate(raw, None).role == "operator"


def test_revoking_a_key_is_audited_and_happens_once(db_session: Session) -> None:
    tenant_id = factories.tenant(db_session)
    key, _ = tenants.create_key(db_session, tenant_id=tenant_id, role="viewer", name="v", actor=None)
    tenants.revoke_key(db_session, key_id=key.id, tenant_id=tenant_id, actor=OPERATOR)
    db_session.refresh(key)
    assert key.revoked_at is not None
    [event] = factories.audit_trail(db_session, tenant_id, "key.revoked")
    assert (event.target, event.outcome, event.actor_role) == (key.id, "ok", "operator")
    with pytest.raises(NotFound):
        tenants.revoke_key(db_session, key_id=key.id, tenant_id=tenant_id, actor=OPERATOR)
    assert len(factories.audit_trail(db_session, tenant_id, "key.revoked")) == 1


def test_a_tenant_cannot_revoke_another_tenants_key(db_session: Session) -> None:
    owner = factories.tenant(db_session)
    key, _ = tenants.create_key(db_session, tenant_id=owner, role="viewer", name="v", actor=None)
    other = factories.tenant(db_session)
    with pytest.raises(NotFound):
        tenants.revoke_key(db_session, key_id=key.id, tenant_id=other, actor=None)
    db.scope_session(db_session, owner)
    db_session.refresh(key)
    assert key.revoked_at is None


# --- authentication ---------------------------------------------------------------------------------------


class FakeClock:
    """Stands in for the `time` module in shared.tenants.service, whose key cache reads `time.monotonic()`."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(tenants, "time", fake)
    return fake


@pytest.fixture(autouse=True)
def empty_key_cache() -> Iterator[None]:
    tenants.key_cache.clear()
    yield
    tenants.key_cache.clear()


def _key(session: Session, tenant_id: str, role: str = "clerk") -> tuple[str, str]:
    key, raw = tenants.create_key(session, tenant_id=tenant_id, role=role, name=role, actor=None)
    return key.id, raw


def _refused(exc_type: type[DomainError], raw: str | None, tenant: str | None = None) -> DomainError:
    with pytest.raises(exc_type) as refused:
        tenants.authenticate(raw, tenant)
    return refused.value


@pytest.mark.usefixtures("db_units")
def test_a_missing_or_unknown_key_is_unauthenticated(db_session: Session) -> None:
    for raw in (None, ""):
        error = _refused(Unauthenticated, raw)
        assert (error.status_code, error.reason) == (401, "MISSING_KEY")
    error = _refused(Unauthenticated, tenants.KEY_PREFIX + "not-a-key")
    assert error.reason == "BAD_KEY"


@pytest.mark.usefixtures("db_units")
def test_a_tenant_key_acts_for_its_tenant_and_only_its_tenant(db_session: Session) -> None:
    tenant_id = factories.tenant(db_session, role_model="simple")
    key_id, raw = _key(db_session, tenant_id, "member")
    expected = Principal(key_id=key_id, role="member", role_model="simple", tenant_id=tenant_id)
    assert tenants.authenticate(raw, None) == expected
    assert tenants.authenticate(raw, tenant_id) == expected
    other = factories.tenant(db_session)
    for named in (other, factories.new_tenant_id()):
        error = _refused(Forbidden, raw, named)
        assert (error.status_code, error.reason) == (403, "TENANT_MISMATCH")


@pytest.mark.usefixtures("db_units")
def test_an_operator_acts_on_the_tenant_it_names_if_that_tenant_exists(db_session: Session) -> None:
    tenant_id = factories.tenant(db_session)
    raw = tenants.KEY_PREFIX + "operator-" + factories.new_tenant_id()
    with db.unit_of_work(db.SYSTEM_SCOPE) as unit:  # the system login, committed
        tenants.ensure_operator_key(unit, raw)
    bare = tenants.authenticate(raw, None)
    assert (bare.role, bare.role_model, bare.tenant_id) == ("operator", "platform", None)
    assert tenants.authenticate(raw, tenant_id) == Principal(bare.key_id, "operator", "platform", tenant_id)
    missing = _refused(NotFound, raw, factories.new_tenant_id())
    assert missing.status_code == 404
    too_long = _refused(NotFound, raw, "x" * 64)
    assert "x" * 63 in str(too_long)
    assert "x" * 64 not in str(too_long)


@pytest.mark.usefixtures("db_units")
def test_an_unknown_key_is_never_cached(db_session: Session, clock: FakeClock) -> None:
    raw = tenants.KEY_PREFIX + "bootstrap-" + factories.new_tenant_id()
    _refused(Unauthenticated, raw)
    with db.unit_of_work(db.SYSTEM_SCOPE) as unit:  # the system login, committed
        tenants.ensure_operator_key(unit, raw)
    assert tenants.authenticate(raw, None).role == "operator"  # at the same instant: nothing cached the refusal


@pytest.mark.usefixtures("db_units")
def test_a_revoked_key_works_until_its_cache_entry_expires_and_not_after(db_session: Session, clock: FakeClock) -> None:
    tenant_id = factories.tenant(db_session)
    key_id, raw = _key(db_session, tenant_id)
    assert tenants.authenticate(raw, None).key_id == key_id  # looked up and cached at t0
    tenants.revoke_key(db_session, key_id=key_id, tenant_id=tenant_id, actor=None)
    ttl = get_settings().api_key_cache_seconds
    assert ttl > 0
    clock.now += ttl
    assert tenants.authenticate(raw, None).key_id == key_id  # still the cached principal at t0 + ttl
    clock.now += 0.001
    assert _refused(Unauthenticated, raw).reason == "BAD_KEY"


@pytest.mark.usefixtures("db_units")
def test_with_no_cache_time_a_revoked_key_stops_at_the_next_instant(
    db_session: Session, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    uncached = get_settings().model_copy(update={"api_key_cache_seconds": 0.0})
    monkeypatch.setattr(tenants, "get_settings", lambda: uncached)
    tenant_id = factories.tenant(db_session)
    key_id, raw = _key(db_session, tenant_id)
    assert tenants.authenticate(raw, None).key_id == key_id
    tenants.revoke_key(db_session, key_id=key_id, tenant_id=tenant_id, actor=None)
    clock.now += 0.001
    assert _refused(Unauthenticated, raw).reason == "BAD_KEY"


def test_api_processes_starting_together_all_ensure_the_bootstrap_key(service_urls: dict[str, str]) -> None:
    """Each API process ensures the bootstrap operator key as it starts; two at once must both succeed (the
    loser of the race waits for the winner's row and finds it), or `uvicorn --workers` fails to start. Real
    commits on separate connections (the key stays in this run's scratch database)."""
    raw = tenants.KEY_PREFIX + "race-" + factories.new_tenant_id()
    errors: list[BaseException] = []

    def second_process() -> None:
        try:
            with db.unit_of_work(db.SYSTEM_SCOPE) as session:
                tenants.ensure_operator_key(session, raw)
        except BaseException as exc:
            errors.append(exc)

    with db.unit_of_work(db.SYSTEM_SCOPE) as first:
        tenants.ensure_operator_key(first, raw)  # inserted, not yet committed
        racing = threading.Thread(target=second_process)
        racing.start()  # its insert waits on the first one's uncommitted row
        racing.join(0.5)
    racing.join(10)
    assert not racing.is_alive()
    assert errors == []
    with owner_unit() as session:
        count = session.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.key_hash == tenants.hash_key(raw)))
    assert count == 1
    assert tenants.authenticate(raw, None).role == "operator"
