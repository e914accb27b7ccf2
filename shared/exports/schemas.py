from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.reports.schemas import ReportName
from shared.schemas import Schema, UtcDatetime


class ExportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = Field(default=None, max_length=63)
    report: ReportName
    # Validated against the report by shared.reports.schemas.parse_params, which names each bad field.
    params: dict[str, Any] = Field(default_factory=dict)


class ExportAccepted(BaseModel):
    export_id: str
    job_id: str
    status: str


class ExportOut(Schema):
    export_id: str = Field(validation_alias="id")
    job_id: str
    report: str
    params: dict[str, Any]
    status: str
    filename: str | None
    sha256: str | None
    row_count: int | None
    created_at: UtcDatetime
