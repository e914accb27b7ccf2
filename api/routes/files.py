"""CSV templates for run uploads."""

from __future__ import annotations

from typing import Literal

from fastapi import Response

from api.deps import api_router
from api.openapi import content
from shared.runs import csvio

router = api_router(prefix="/files", tags=["runs"])


@router.get(
    "/templates/{kind}",
    operation_id="files_template",
    response_class=Response,
    responses=content("text/csv", "the CSV header row of an upload file"),
)
def template(kind: Literal["sales", "lots"]) -> Response:
    return Response(
        content=csvio.template_csv(kind),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{kind}_template.csv"'},
    )
