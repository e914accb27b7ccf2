"""Request guards for the inventory routes: the permission check runs as a dependency, so a caller
without the permission gets 403 before its body is even looked at, and JSON bodies are parsed with
`parse_float=str` so decimals reach validation with every digit the client sent."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from api.deps import PrincipalDep
from shared.auth import Permission, Principal

B = TypeVar("B", bound=BaseModel)


def requires(permission: Permission) -> Any:
    def check(principal: PrincipalDep) -> Principal:
        principal.require(permission)
        return principal

    return Depends(check)


def json_body(model: type[B]) -> Any:
    async def parse(request: Request) -> B:
        raw = await request.body()
        try:
            data = json.loads(raw, parse_float=str)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise RequestValidationError(
                [{"type": "json_invalid", "loc": ("body",), "msg": "the request body is not valid JSON"}]
            ) from exc
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise RequestValidationError(
                exc.errors(include_url=False, include_context=False, include_input=False)
            ) from exc

    return Depends(parse)


Reader = Annotated[Principal, requires(Permission.READ)]
MasterWriter = Annotated[Principal, requires(Permission.MASTER_WRITE)]


def as_utc(value: datetime | None) -> datetime | None:
    """Query timestamps without a zone are read as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


From = Annotated[datetime | None, Query(alias="from", description="inclusive; ISO 8601 (UTC if no zone)")]
To = Annotated[datetime | None, Query(alias="to", description="exclusive; ISO 8601 (UTC if no zone)")]
SafeQuery = Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
