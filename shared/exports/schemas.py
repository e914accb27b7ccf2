"""Exports as API clients see them: the request (a report and its parameters), the 202 answer, the export."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from shared.base import text_limit
from shared.exports.models import ExportStatus
from shared.reports.schemas import ReportName, ReportParams
from shared.schemas import Schema, UtcDatetime
from shared.tenants.models import Tenant


def _params_schema() -> dict[str, Any]:
    # The parameters are kept a plain mapping (shared.reports.schemas.parse_params validates them against the
    # report and names each bad field); the schema is the parameters' own, inlined under each parent's name.
    schema = ReportParams.model_json_schema(by_alias=True)
    schema.pop("title")
    schema["description"] = "report parameters; each report takes only its own (see the report's endpoint)"
    return schema


Params = Annotated[dict[str, Any], WithJsonSchema(_params_schema(), mode="validation")]
StoredParams = Annotated[dict[str, Any], WithJsonSchema(_params_schema(), mode="serialization")]


class ExportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = Field(default=None, max_length=text_limit(Tenant, "id"))
    report: ReportName
    params: Params = Field(default_factory=dict)


class ExportAccepted(BaseModel):
    export_id: str
    job_id: str
    status: ExportStatus


class ExportOut(Schema):
    export_id: str = Field(validation_alias="id")
    job_id: str
    report: ReportName
    params: StoredParams = Field(description="the parameters in canonical spelling")
    status: ExportStatus
    filename: str | None
    sha256: str | None
    row_count: int | None
    created_at: UtcDatetime
