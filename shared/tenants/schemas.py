"""Tenants and API keys as API clients see them. Plans, role models and roles are enums in the schema; tenant
ids and roles are checked by the service (so a bad one keeps its own reason, BAD_TENANT_ID or BAD_ROLE)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.auth import ROLE_PERMISSIONS
from shared.base import text_limit
from shared.schemas import Schema, UtcDatetime
from shared.tenants.models import ApiKey, Tenant

PlanName = Literal["free", "pro", "enterprise"]
RoleModel = Literal["standard", "simple"]
# Every tenant role of every role model (which ones a tenant has depends on its role model).
TENANT_ROLES: tuple[str, ...] = tuple(
    dict.fromkeys(role for model, roles in ROLE_PERMISSIONS.items() if model != "platform" for role in roles)
)
TENANT_ID_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(
        min_length=1,
        max_length=200,
        json_schema_extra={"pattern": TENANT_ID_PATTERN, "minLength": 3, "maxLength": text_limit(Tenant, "id")},
    )
    name: str = Field(min_length=1, max_length=text_limit(Tenant, "name"))
    plan: PlanName
    role_model: RoleModel


class TenantPlanUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: PlanName


class TenantOut(Schema):
    tenant_id: str = Field(validation_alias="id")
    name: str
    plan: PlanName
    role_model: RoleModel
    created_at: UtcDatetime


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str = Field(
        min_length=1,
        max_length=16,
        description="a role of the tenant's role model: standard has owner, manager, clerk and viewer; simple has "
        "owner and member",
        json_schema_extra={"enum": list(TENANT_ROLES)},
    )
    name: str = Field(min_length=1, max_length=text_limit(ApiKey, "name"))


class KeyCreated(BaseModel):
    id: str
    key: str = Field(description="the secret, shown only in this answer")
    role: str = Field(json_schema_extra={"enum": list(TENANT_ROLES)})
    name: str
    tenant_id: str | None


BackdatedEntries = Literal["reject", "repost"]


class TenantSettings(Schema):
    """The tenant's costing settings; one line per setting (each one column of `tenants`)."""

    backdated_entries: BackdatedEntries = Field(
        description="a receipt, count gain or run lot dated before a costed sale of its SKU: `reject` refuses it "
        "(422 BACKDATED_RECEIPT), `repost` accepts it and re-costs the sales it changes (a `repost` job)"
    )


class TenantSettingsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backdated_entries: BackdatedEntries | None = None
