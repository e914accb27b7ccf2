from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas import Schema, UtcDatetime


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    plan: Literal["free", "pro", "enterprise"]
    role_model: Literal["standard", "simple"]


class TenantPlanUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: Literal["free", "pro", "enterprise"]


class TenantOut(Schema):
    tenant_id: str = Field(validation_alias="id")
    name: str
    plan: str
    role_model: str
    created_at: UtcDatetime


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str = Field(min_length=1, max_length=16)
    name: str = Field(min_length=1, max_length=200)


class KeyCreated(BaseModel):
    id: str
    key: str
    role: str
    name: str
    tenant_id: str | None
