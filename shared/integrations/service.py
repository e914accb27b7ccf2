"""Integrations as a resource: create (plan ceiling, URL and secret checks), read, update, enable/disable,
rotate the secret, read the outbox, requeue a payload, and request a dispatch. Every change is audited here;
no answer but the creating one carries a secret."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.audit import service as audit
from shared.auth import Principal
from shared.base import new_id, utcnow
from shared.config import get_settings
from shared.errors import NotFound, ValidationFailed
from shared.integrations import secrets, urls
from shared.integrations.models import DeliveryStatus, Dispatch, DispatchStatus, Integration, OutboxEntry
from shared.integrations.schemas import IntegrationCreate, IntegrationUpdate
from shared.jobs import service as jobs
from shared.jobs.kinds import JobKind, integration_stream
from shared.jobs.service import AcceptedJob
from shared.pagination import page
from shared.tenants import plans

LIMIT = "integrations"
MAX_ID_LENGTH = 40


def _audit(session: Session, actor: Principal | None, integration: Integration, action: str, **details: Any) -> None:
    audit.record(
        session,
        tenant_id=integration.tenant_id,
        actor=actor,
        action=f"integration.{action}",
        target=integration.id,
        outcome="ok",
        details=details or None,
    )


def create_integration(
    session: Session, tenant_id: str, body: IntegrationCreate, *, actor: Principal | None
) -> tuple[Integration, str]:
    """A new integration and its signing secret (generated when none is given), shown to the caller once."""
    plans.lock_tenant(session, tenant_id)
    used = session.scalar(select(func.count()).select_from(Integration).where(Integration.tenant_id == tenant_id))
    plans.check_limit(session, tenant_id, LIMIT, int(used or 0))
    receiver = urls.parse(body.url)
    if body.secret is not None:
        secrets.check_secret(body.secret)
    secret = body.secret or secrets.generate_secret()
    integration = Integration(
        id=new_id("int"),
        tenant_id=tenant_id,
        name=body.name,
        kind=body.kind,
        url_redacted=receiver.redacted,
        url_encrypted=secrets.encrypt(receiver.url),
        events=[str(e) for e in body.events],
        enabled=True,
        secret_encrypted=secrets.encrypt(secret),
    )
    session.add(integration)
    session.flush()
    session.refresh(integration)
    _audit(session, actor, integration, "created", name=body.name, url=receiver.redacted, events=integration.events)
    return integration, secret


def get_integration(session: Session, tenant_id: str, integration_id: str, *, lock: bool = False) -> Integration:
    query = select(Integration).where(
        Integration.id == integration_id[:MAX_ID_LENGTH], Integration.tenant_id == tenant_id
    )
    integration = session.scalar(query.with_for_update() if lock else query)
    if integration is None or len(integration_id) > MAX_ID_LENGTH:
        raise NotFound(f"integration '{integration_id[:MAX_ID_LENGTH]}' not found")
    return integration


def list_integrations(
    session: Session, tenant_id: str, *, limit: int, cursor: str | None
) -> tuple[list[Integration], str | None]:
    query = select(Integration).where(Integration.tenant_id == tenant_id)
    return page(session, query, Integration.id, limit=limit, cursor=cursor)


def update_integration(
    session: Session, tenant_id: str, integration_id: str, changes: IntegrationUpdate, *, actor: Principal | None
) -> Integration:
    integration = get_integration(session, tenant_id, integration_id, lock=True)
    changed: dict[str, Any] = {}
    if changes.name is not None:
        integration.name = changed["name"] = changes.name
    if changes.url is not None:
        receiver = urls.parse(changes.url)
        integration.url_encrypted = secrets.encrypt(receiver.url)
        integration.url_redacted = changed["url"] = receiver.redacted
    if changes.events is not None:
        integration.events = changed["events"] = [str(e) for e in changes.events]
    if changed:
        integration.updated_at = utcnow()
        session.flush()
        _audit(session, actor, integration, "updated", **changed)
    return integration


def set_enabled(
    session: Session, tenant_id: str, integration_id: str, enabled: bool, *, actor: Principal | None
) -> Integration:
    """Enable or disable. A disabled integration queues nothing new and cannot be dispatched; what it had
    queued stays queued for when it is enabled again."""
    integration = get_integration(session, tenant_id, integration_id, lock=True)
    if integration.enabled != enabled:
        integration.enabled = enabled
        integration.updated_at = utcnow()
        session.flush()
    _audit(session, actor, integration, "enabled" if enabled else "disabled")
    return integration


def rotate_secret(
    session: Session, tenant_id: str, integration_id: str, *, actor: Principal | None
) -> tuple[Integration, str]:
    """A new signing secret, shown once. Deliveries carry signatures with both the new and the previous
    secret until the grace period ends, so receivers can switch without losing a delivery."""
    integration = get_integration(session, tenant_id, integration_id, lock=True)
    secret = secrets.generate_secret()
    now = utcnow()
    integration.previous_secret_encrypted = integration.secret_encrypted
    integration.previous_secret_expires_at = now + timedelta(seconds=get_settings().integrations_rotation_grace_seconds)
    integration.secret_encrypted = secrets.encrypt(secret)
    integration.updated_at = now
    session.flush()
    until = integration.previous_secret_expires_at.isoformat()
    _audit(session, actor, integration, "secret_rotated", previous_secret_valid_until=until)
    return integration, secret


def signing_secrets(integration: Integration) -> list[str]:
    """The current secret, then the previous one while its grace period lasts."""
    found = [secrets.decrypt(integration.secret_encrypted)]
    expires = integration.previous_secret_expires_at
    if integration.previous_secret_encrypted is not None and expires is not None and expires > utcnow():
        found.append(secrets.decrypt(integration.previous_secret_encrypted))
    return found


def receiver_url(integration: Integration) -> str:
    return secrets.decrypt(integration.url_encrypted)


def signature_headers_for(integration: Integration, event_id: str, body: bytes, now: datetime) -> dict[str, str]:
    return secrets.signature_headers(event_id, body, signing_secrets(integration), now)


def list_outbox(
    session: Session,
    tenant_id: str,
    integration_id: str,
    *,
    status: DeliveryStatus | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[OutboxEntry], str | None]:
    """The integration's payloads in the order they were queued."""
    integration = get_integration(session, tenant_id, integration_id)
    query = select(OutboxEntry).where(OutboxEntry.tenant_id == tenant_id, OutboxEntry.integration_id == integration.id)
    if status is not None:
        query = query.where(OutboxEntry.status == status)
    return page(session, query, OutboxEntry.position, limit=limit, cursor=cursor)


REQUEUEABLE = (DeliveryStatus.FAILED, DeliveryStatus.OUTCOME_UNKNOWN)


def requeue(
    session: Session, tenant_id: str, integration_id: str, event_id: str, *, actor: Principal | None
) -> OutboxEntry:
    """The operator's explicit "send this again" for a failed payload or one whose outcome is unknown. It keeps
    its place in the order: the next dispatch sends it before anything queued after it."""
    integration = get_integration(session, tenant_id, integration_id)
    entry = session.scalar(
        select(OutboxEntry)
        .where(
            OutboxEntry.tenant_id == tenant_id,
            OutboxEntry.integration_id == integration.id,
            OutboxEntry.event_id == event_id[:MAX_ID_LENGTH],
        )
        .with_for_update()
    )
    if entry is None:
        raise NotFound(f"payload '{event_id[:MAX_ID_LENGTH]}' not found")
    if entry.status not in REQUEUEABLE:
        raise ValidationFailed(
            f"payload '{entry.event_id}' is {entry.status}; only a failed payload or one whose outcome is unknown "
            "can be requeued",
            reason="NOT_REQUEUEABLE",
            details=[{"field": "event_id", "message": f"status is {entry.status}"}],
        )
    previous = entry.status
    entry.status, entry.dispatch_id = DeliveryStatus.QUEUED, None
    session.flush()
    _audit(session, actor, integration, "payload_requeued", event_id=entry.event_id, previous_status=previous)
    return entry


def request_dispatch(
    session: Session, tenant_id: str, integration_id: str, *, actor: Principal
) -> tuple[Dispatch, AcceptedJob]:
    """Accept a dispatch as a job in the integration's own ordered stream (not the tenant's ledger stream)."""
    integration = get_integration(session, tenant_id, integration_id)
    if not integration.enabled:
        raise ValidationFailed(
            f"integration '{integration.id}' is disabled; enable it before dispatching",
            reason="INTEGRATION_DISABLED",
            details=[{"field": "integration_id", "message": "disabled"}],
        )
    dispatch_id = new_id("job")
    dispatch = Dispatch(
        id=dispatch_id,
        tenant_id=tenant_id,
        integration_id=integration.id,
        requested_by_key_id=actor.key_id,
        requested_by_role=actor.role,
        status=DispatchStatus.QUEUED,
    )
    session.add(dispatch)
    _audit(session, actor, integration, "dispatch_requested", job_id=dispatch_id)
    job = jobs.accept_job(
        session,
        tenant_id=tenant_id,
        kind=JobKind.DISPATCH,
        payload={"integration_id": integration.id},
        actor=actor,
        job_id=dispatch_id,
        stream=integration_stream(integration.id),
    )
    return dispatch, job


def list_dispatches(
    session: Session, tenant_id: str, integration_id: str, *, limit: int, cursor: str | None
) -> tuple[list[Dispatch], str | None]:
    """Who asked, when, how many were sent, and how each dispatch ended; newest first."""
    integration = get_integration(session, tenant_id, integration_id)
    query = select(Dispatch).where(Dispatch.tenant_id == tenant_id, Dispatch.integration_id == integration.id)
    return page(session, query, Dispatch.id, limit=limit, cursor=cursor, descending=True)
