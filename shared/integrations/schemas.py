"""Request and response shapes for integrations. A secret appears only in the answers that create it
(`IntegrationCreated`, `SecretRotated`); no other shape has a field that could carry it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from shared.base import text_limit
from shared.integrations.models import DeliveryStatus, DispatchStatus, EventName, Integration
from shared.integrations.urls import MAX_URL_LENGTH
from shared.schemas import Schema, UtcDatetime
from shared.tenants.models import Tenant

_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


def _distinct(events: list[EventName]) -> list[EventName]:
    if len(set(events)) != len(events):
        raise ValueError("each event may be listed once")
    return sorted(events)


Events = Annotated[list[EventName], Field(min_length=1, max_length=len(EventName)), AfterValidator(_distinct)]
Name = Annotated[str, Field(min_length=1, max_length=text_limit(Integration, "name"), pattern=_PRINTABLE)]
Url = Annotated[str, Field(min_length=1, max_length=MAX_URL_LENGTH)]


class IntegrationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = Field(default=None, max_length=text_limit(Tenant, "id"))
    name: Name
    kind: Literal["webhook"] = "webhook"
    url: Url
    events: Events
    # `whsec_` + base64; generated when absent. Never echoed back.
    secret: str | None = Field(default=None, max_length=200, repr=False)


class IntegrationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = Field(default=None, max_length=text_limit(Tenant, "id"))
    name: Name | None = None
    url: Url | None = None
    events: Events | None = None

    @field_validator("name", "url", "events")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be omitted, not null")
        return value


class IntegrationOut(Schema):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    id: str
    tenant_id: str
    name: str
    kind: str
    url: str = Field(validation_alias="url_redacted", description="credentials in the URL are shown as ***")
    events: list[EventName]
    enabled: bool
    created_at: UtcDatetime
    updated_at: UtcDatetime | None
    previous_secret_valid_until: UtcDatetime | None = Field(default=None, validation_alias="previous_secret_expires_at")


class IntegrationCreated(IntegrationOut):
    secret: str = Field(description="the signing secret: shown only now")


class SecretRotated(BaseModel):
    id: str
    secret: str = Field(description="the new signing secret: shown only now")
    previous_secret_valid_until: datetime


class OutboxEntryOut(Schema):
    event_id: str
    position: int
    type: EventName = Field(validation_alias="event_type")
    status: DeliveryStatus
    payload: dict[str, Any]
    sends: int
    response_status: int | None
    error: str | None
    created_at: UtcDatetime
    sent_at: UtcDatetime | None
    finished_at: UtcDatetime | None


class DispatchAccepted(BaseModel):
    dispatch_id: str
    job_id: str
    integration_id: str
    status: DispatchStatus


class DispatchOut(Schema):
    dispatch_id: str = Field(validation_alias="id", description="also the id of the job that ran it")
    integration_id: str
    status: DispatchStatus
    requested_by_key_id: str | None
    requested_by_role: str | None
    requested_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
    sent: int
    delivered: int
    stopped_at_event_id: str | None
    outcome: str | None
