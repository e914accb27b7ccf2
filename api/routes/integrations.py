"""Integrations: webhook receivers (owner), their outbox, and operator-invoked dispatch."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi.responses import JSONResponse

from api.accept import accept
from api.deps import (
    CursorQuery,
    IdempotencyKeyHeader,
    IntegrationsDispatcher,
    IntegrationsManager,
    LimitQuery,
    Reader,
    TenantSession,
    api_router,
    json_body,
    tenant_of,
)
from api.openapi import errors
from shared.integrations import service as integrations
from shared.integrations.models import DeliveryStatus
from shared.integrations.schemas import (
    DispatchAccepted,
    DispatchOut,
    IntegrationCreate,
    IntegrationCreated,
    IntegrationOut,
    IntegrationUpdate,
    OutboxEntryOut,
    SecretRotated,
)
from shared.jobs import service as jobs
from shared.schemas import Page

router = api_router(prefix="/integrations", tags=["integrations"])


@router.post(
    "",
    status_code=201,
    response_model=IntegrationCreated,
    operation_id="integrations_create",
    responses=errors(402),
)
def create_integration(
    principal: IntegrationsManager,
    session: TenantSession,
    body: Annotated[IntegrationCreate, json_body(IntegrationCreate)],
) -> IntegrationCreated:
    """Create a webhook integration. The signing secret (given, or generated) is in this answer only."""
    tenant_id = tenant_of(principal, body.tenant_id)
    integration, secret = integrations.create_integration(session, tenant_id, body, actor=principal)
    return IntegrationCreated.model_validate(
        {**IntegrationOut.model_validate(integration).model_dump(), "secret": secret}
    )


@router.get("", response_model=Page[IntegrationOut], operation_id="integrations_list")
def list_integrations(
    principal: Reader, session: TenantSession, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[IntegrationOut]:
    rows, next_cursor = integrations.list_integrations(session, tenant_of(principal), limit=limit, cursor=cursor)
    return Page(items=[IntegrationOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/{integration_id}", response_model=IntegrationOut, operation_id="integrations_get")
def get_integration(integration_id: str, principal: Reader, session: TenantSession) -> IntegrationOut:
    return IntegrationOut.model_validate(integrations.get_integration(session, tenant_of(principal), integration_id))


@router.patch("/{integration_id}", response_model=IntegrationOut, operation_id="integrations_update")
def update_integration(
    integration_id: str,
    principal: IntegrationsManager,
    session: TenantSession,
    body: Annotated[IntegrationUpdate, json_body(IntegrationUpdate)],
) -> IntegrationOut:
    tenant_id = tenant_of(principal, body.tenant_id)
    integration = integrations.update_integration(session, tenant_id, integration_id, body, actor=principal)
    return IntegrationOut.model_validate(integration)


@router.post("/{integration_id}/enable", response_model=IntegrationOut, operation_id="integrations_enable")
def enable_integration(integration_id: str, principal: IntegrationsManager, session: TenantSession) -> IntegrationOut:
    integration = integrations.set_enabled(session, tenant_of(principal), integration_id, True, actor=principal)
    return IntegrationOut.model_validate(integration)


@router.post("/{integration_id}/disable", response_model=IntegrationOut, operation_id="integrations_disable")
def disable_integration(integration_id: str, principal: IntegrationsManager, session: TenantSession) -> IntegrationOut:
    integration = integrations.set_enabled(session, tenant_of(principal), integration_id, False, actor=principal)
    return IntegrationOut.model_validate(integration)


@router.post("/{integration_id}/rotate-secret", response_model=SecretRotated, operation_id="integrations_rotate_secret")
def rotate_secret(integration_id: str, principal: IntegrationsManager, session: TenantSession) -> SecretRotated:
    """A new signing secret, in this answer only; the previous one also signs deliveries until
    `previous_secret_valid_until`."""
    integration, secret = integrations.rotate_secret(session, tenant_of(principal), integration_id, actor=principal)
    assert integration.previous_secret_expires_at is not None
    return SecretRotated(
        id=integration.id, secret=secret, previous_secret_valid_until=integration.previous_secret_expires_at
    )


@router.get("/{integration_id}/outbox", response_model=Page[OutboxEntryOut], operation_id="integrations_outbox")
def outbox(
    integration_id: str,
    principal: Reader,
    session: TenantSession,
    status: DeliveryStatus | None = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[OutboxEntryOut]:
    """The integration's payloads in the order they were queued, with their delivery status."""
    rows, next_cursor = integrations.list_outbox(
        session, tenant_of(principal), integration_id, status=status, limit=limit, cursor=cursor
    )
    return Page(items=[OutboxEntryOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/{integration_id}/outbox/{event_id}/requeue", response_model=OutboxEntryOut, operation_id="integrations_requeue"
)
def requeue(
    integration_id: str, event_id: str, principal: IntegrationsDispatcher, session: TenantSession
) -> OutboxEntryOut:
    """Send a failed payload, or one whose outcome is unknown, again at the next dispatch, in its place."""
    entry = integrations.requeue(session, tenant_of(principal), integration_id, event_id, actor=principal)
    return OutboxEntryOut.model_validate(entry)


@router.post(
    "/{integration_id}/dispatch", status_code=202, response_model=DispatchAccepted, operation_id="integrations_dispatch"
)
def dispatch(
    integration_id: str,
    principal: IntegrationsDispatcher,
    session: TenantSession,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Deliver the integration's queued payloads, in order, now (a job; nothing is ever sent by itself)."""
    tenant_id = tenant_of(principal)

    def submit() -> dict[str, Any]:
        row, job = integrations.request_dispatch(session, tenant_id, integration_id, actor=principal)
        return DispatchAccepted(
            dispatch_id=row.id, job_id=job.id, integration_id=row.integration_id, status=row.status
        ).model_dump(mode="json")

    return accept(session, tenant_id, idempotency_key, jobs.request_fingerprint("dispatch", integration_id), submit)


@router.get("/{integration_id}/dispatches", response_model=Page[DispatchOut], operation_id="integrations_dispatches")
def dispatches(
    integration_id: str, principal: Reader, session: TenantSession, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[DispatchOut]:
    rows, next_cursor = integrations.list_dispatches(
        session, tenant_of(principal), integration_id, limit=limit, cursor=cursor
    )
    return Page(items=[DispatchOut.model_validate(r) for r in rows], next_cursor=next_cursor)
