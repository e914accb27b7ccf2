"""Domain events queued with the facts they report: a job that posts a receipt or a count, completes or rolls
back a run, or completes an export calls `emit` inside its own transaction, so a payload exists exactly when
the fact does (a failed or rolled-back job queues nothing). Each enabled integration subscribed to the event
gets the payload `{event_id, type, tenant_id, occurred_at, data}` at its next outbox position; `data` carries
ids and totals, never secrets."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.base import new_id, utcnow
from shared.integrations.models import DeliveryStatus, EventName, Integration, OutboxEntry


def emit(session: Session, tenant_id: str, event: EventName, data: dict[str, Any]) -> int:
    """Queue `event` for every enabled integration of the tenant subscribed to it; returns how many."""
    subscribed = session.scalars(
        select(Integration)
        .where(Integration.tenant_id == tenant_id, Integration.enabled, Integration.events.contains([str(event)]))
        .order_by(Integration.id)
        .with_for_update()  # the outbox position is handed out under the integration's row lock
    ).all()
    occurred_at = utcnow().isoformat().replace("+00:00", "Z")
    for integration in subscribed:
        event_id = new_id("evt")
        payload = {
            "event_id": event_id,
            "type": str(event),
            "tenant_id": tenant_id,
            "occurred_at": occurred_at,
            "data": data,
        }
        session.add(
            OutboxEntry(
                integration_id=integration.id,
                position=integration.next_position,
                tenant_id=tenant_id,
                event_id=event_id,
                event_type=event,
                payload=payload,
                status=DeliveryStatus.QUEUED,
            )
        )
        integration.next_position += 1
    if subscribed:
        session.flush()
    return len(subscribed)
