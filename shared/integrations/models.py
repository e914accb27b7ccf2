"""Integrations (webhook receivers a tenant subscribes to domain events), their outbox of payloads in order,
and the history of dispatches. Secrets and the URL's credentials are stored encrypted (shared/integrations/
secrets.py); what is shown is the redacted URL."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.base import Base, CreatedAt, EnumText


class EventName(StrEnum):
    """The domain events an integration can subscribe to (contract section 6)."""

    RECEIPT_POSTED = "receipt.posted"
    COUNT_POSTED = "count.posted"
    RUN_COMPLETED = "run.completed"
    RUN_ROLLED_BACK = "run.rolled_back"
    EXPORT_COMPLETED = "export.completed"
    RETURN_POSTED = "return.posted"
    LANDED_COST_POSTED = "landed_cost.posted"
    SKU_REVALUED = "sku.revalued"


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"  # claimed by a dispatch that committed the claim before its HTTP call
    DELIVERED = "delivered"
    FAILED = "failed"
    # The claim committed but no outcome was recorded: the dispatch's worker died, or the receiver did not
    # answer after the request was sent. Never sent again unless an operator requeues it.
    OUTCOME_UNKNOWN = "outcome_unknown"


class DispatchStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"  # every queued payload was delivered
    FAILED = "failed"  # stopped at a payload that failed or whose outcome is unknown


class Integration(Base):
    __tablename__ = "integrations"
    __table_args__ = (Index("ix_integrations_tenant", "tenant_id", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), server_default="webhook")
    url_redacted: Mapped[str] = mapped_column(String(2048))
    url_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    events: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    enabled: Mapped[bool] = mapped_column(Boolean, server_default="true")
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    # After a rotation, deliveries are signed with the previous secret too until this time.
    previous_secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The next outbox position: payloads are numbered gaplessly per integration in the order they were queued.
    next_position: Mapped[int] = mapped_column(BigInteger, server_default="1")
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OutboxEntry(Base):
    """One payload for one integration, queued in the transaction of the fact it reports."""

    __tablename__ = "integration_outbox"
    __table_args__ = (
        UniqueConstraint("tenant_id", "event_id"),
        Index("ix_integration_outbox_queued", "integration_id", "position", postgresql_where="status = 'queued'"),
    )

    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id"), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    event_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[EventName] = mapped_column(EnumText(EventName, 32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[DeliveryStatus] = mapped_column(EnumText(DeliveryStatus, 16), server_default="queued")
    # The dispatch (its job id) and attempt that claimed it last, and what happened.
    dispatch_id: Mapped[str | None] = mapped_column(String(40))
    sends: Mapped[int] = mapped_column(Integer, server_default="0")
    response_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[CreatedAt]
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Dispatch(Base):
    """One operator-invoked dispatch of an integration (its id is the job's)."""

    __tablename__ = "integration_dispatches"
    __table_args__ = (Index("ix_integration_dispatches_integration", "integration_id", "requested_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id"))
    requested_by_key_id: Mapped[str | None] = mapped_column(String(40))
    requested_by_role: Mapped[str | None] = mapped_column(String(16))
    requested_at: Mapped[CreatedAt]
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[DispatchStatus] = mapped_column(EnumText(DispatchStatus, 16), server_default="queued")
    sent: Mapped[int] = mapped_column(Integer, server_default="0")
    delivered: Mapped[int] = mapped_column(Integer, server_default="0")
    stopped_at_event_id: Mapped[str | None] = mapped_column(String(40))
    outcome: Mapped[str | None] = mapped_column(String(300))
