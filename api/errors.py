"""Every non-2xx answer in the contract's envelope; 402/403/422 on a tenant are audited."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared import db
from shared.audit import service as audit
from shared.auth import Principal
from shared.errors import DomainError

log = logging.getLogger("asora.api")
AUDITED_STATUSES = {402, 403, 422}


def envelope(status: int, code: str, reason: str | None, message: str, details: list[Any]) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={"error": {"code": code, "reason": reason, "message": message, "details": details}},
    )


def _audit_refusal(request: Request, status: int, code: str, reason: str | None, message: str) -> None:
    principal: Principal | None = getattr(request.state, "principal", None)
    if status not in AUDITED_STATUSES or principal is None or principal.tenant_id is None:
        return
    try:
        with db.unit_of_work(principal.tenant_id) as session:
            audit.record(
                session,
                tenant_id=principal.tenant_id,
                actor=principal,
                action=f"{request.method} {getattr(request.scope.get('route'), 'path', request.url.path)}",
                outcome="refused",
                reason=reason or code,
                request_id=getattr(request.state, "request_id", None),
                details={"status": status, "code": code, "message": message},
            )
    except Exception:
        log.exception("could not audit a refused request")


def _row_detail(loc: tuple[Any, ...], message: str) -> dict[str, Any]:
    parts = [p for p in loc if p != "body"]
    detail: dict[str, Any] = {"field": ".".join(str(p) for p in parts) or "body", "message": message}
    ints = [p for p in parts if isinstance(p, int)]
    if ints:
        detail["row"] = ints[0] + 1
        detail["field"] = str(parts[-1])
    return detail


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> JSONResponse:
        _audit_refusal(request, exc.status_code, exc.code, exc.reason, exc.message)
        return envelope(exc.status_code, exc.code, exc.reason, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        reason = "MALFORMED_JSON" if any(e.get("type") == "json_invalid" for e in errors) else "BAD_REQUEST"
        details = [_row_detail(tuple(e.get("loc", ())), str(e.get("msg", ""))) for e in errors[:100]]
        message = "the request body is not valid JSON" if reason == "MALFORMED_JSON" else "the request is invalid"
        _audit_refusal(request, 422, "VALIDATION_FAILED", reason, message)
        return envelope(422, "VALIDATION_FAILED", reason, message, details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return envelope(404, "NOT_FOUND", None, "no such resource", [])
        if exc.status_code == 405:
            return envelope(405, "METHOD_NOT_ALLOWED", None, "method not allowed", [])
        return envelope(exc.status_code, "HTTP_ERROR", None, str(exc.detail), [])

    @app.exception_handler(OperationalError)
    async def database_down(_request: Request, exc: OperationalError) -> JSONResponse:
        log.error("database unavailable: %s", exc.__class__.__name__)
        return envelope(
            503, "UNAVAILABLE", "DATABASE_UNAVAILABLE", "a dependency is unavailable; nothing was accepted", []
        )

    @app.exception_handler(DBAPIError)
    async def database_error(_request: Request, exc: DBAPIError) -> JSONResponse:
        log.exception("database error", exc_info=exc)
        return envelope(
            503, "UNAVAILABLE", "DATABASE_ERROR", "the request could not be completed; nothing was accepted", []
        )

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return envelope(500, "INTERNAL", None, "an internal error occurred; nothing was accepted", [])
