"""Every non-2xx answer in the contract's envelope, with the request's id; 402/403/422 on a tenant are
audited. Handlers that write (the refusal audit) are plain functions, which Starlette runs in the
threadpool: nothing here blocks the event loop."""

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
LOCK_NOT_AVAILABLE = "55P03"
QUERY_CANCELED = "57014"


def envelope(
    request: Request | None,
    status: int,
    code: str,
    reason: str | None,
    message: str,
    details: list[Any],
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None) if request is not None else None
    body = {"error": {"code": code, "reason": reason, "message": message, "details": details, "request_id": request_id}}
    return JSONResponse(status_code=status, content=body, headers=headers)


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


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    def domain_error(request: Request, exc: DomainError) -> JSONResponse:
        _audit_refusal(request, exc.status_code, exc.code, exc.reason, exc.message)
        return envelope(request, exc.status_code, exc.code, exc.reason, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Query, path and header parameters (bodies go through api.deps.json_body).
        details = []
        for error in exc.errors()[:100]:
            loc = [str(p) for p in error.get("loc", ())]
            field = loc[-1] if loc else "request"
            details.append({"field": field, "message": str(error.get("msg", "")), "location": ".".join(loc[:1])})
        message = "the request is invalid"
        _audit_refusal(request, 422, "VALIDATION_FAILED", "BAD_REQUEST", message)
        return envelope(request, 422, "VALIDATION_FAILED", "BAD_REQUEST", message, details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return envelope(request, 404, "NOT_FOUND", None, "no such resource", [])
        if exc.status_code == 405:  # the path exists, the operation does not: the contract's NOT_FOUND code
            allow = dict(exc.headers or {})
            return envelope(
                request, 405, "NOT_FOUND", "METHOD_NOT_ALLOWED", "the path has no such method", [], headers=allow
            )
        if exc.status_code == 413:
            return envelope(request, 413, "VALIDATION_FAILED", "BODY_TOO_LARGE", str(exc.detail), [])
        # Anything else Starlette refuses before a route runs is a malformed request.
        return envelope(request, 422, "VALIDATION_FAILED", "BAD_REQUEST", str(exc.detail), [])

    @app.exception_handler(OperationalError)
    async def database_down(request: Request, exc: OperationalError) -> JSONResponse:
        if _sqlstate(exc) in (LOCK_NOT_AVAILABLE, QUERY_CANCELED):
            return _busy(request, exc)
        log.error("database unavailable: %s", exc.__class__.__name__)
        return envelope(
            request, 503, "UNAVAILABLE", "DATABASE_UNAVAILABLE", "a dependency is unavailable; nothing was accepted", []
        )

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if _sqlstate(exc) in (LOCK_NOT_AVAILABLE, QUERY_CANCELED):
            return _busy(request, exc)
        log.exception("database error", exc_info=exc)
        return envelope(
            request,
            503,
            "UNAVAILABLE",
            "DATABASE_ERROR",
            "the request could not be completed; nothing was accepted",
            [],
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        # Starlette answers this one from outside every middleware, so the request id is set here.
        request_id = getattr(request.state, "request_id", None)
        return envelope(
            request,
            500,
            "INTERNAL",
            None,
            "an internal error occurred; nothing was accepted",
            [],
            headers={"X-Request-ID": request_id} if request_id else None,
        )


def _busy(request: Request, exc: DBAPIError) -> JSONResponse:
    """A lock wait or statement past its bound: the tenant is busy right now; nothing was accepted."""
    log.warning("request gave up waiting (%s)", _sqlstate(exc))
    return envelope(
        request,
        503,
        "UNAVAILABLE",
        "BUSY",
        "the tenant is busy with a conflicting request; nothing was accepted, retry shortly",
        [],
        headers={"Retry-After": "1"},
    )
