"""The FastAPI application: the one place the API process is wired (database role, publisher, routers, error
envelope, request ids, metrics, bootstrap key)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
import structlog
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import errors, openapi
from api.guards import RejectBadText
from api.metrics import LATENCY, REQUESTS, register_collectors
from api.routes import (
    audit,
    costing,
    counts,
    exports,
    files,
    health,
    integrations,
    inventory,
    jobs,
    landed_costs,
    ledger,
    receipts,
    reports,
    reposts,
    returns,
    runs,
    tenants,
)
from api.routes import settings as tenant_settings
from shared import db
from shared.config import get_settings
from shared.jobs import outbox
from shared.logs import configure_logging, get_logger
from shared.tenants import service as tenant_service
from worker import health as worker_health
from worker.publisher import BackgroundPublisher

log = logging.getLogger("asora.api")
access = get_logger("asora.access")
PREFIX = "/api/v1"
# A client's X-Request-ID is echoed when it is a plain token; anything else is replaced by a new id.
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")


def _bootstrap() -> BackgroundPublisher:
    settings = get_settings()
    db.configure_process(statement_timeout_ms=settings.api_statement_timeout_ms)
    publisher = BackgroundPublisher()
    outbox.set_publisher(publisher)
    if settings.bootstrap_operator_key is not None:
        with db.unit_of_work(db.SYSTEM_SCOPE) as session:
            tenant_service.ensure_operator_key(session, settings.bootstrap_operator_key.get_secret_value())
    worker_health.watch_workers()
    return publisher


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    # A served process writes its lines from a thread of their own (the event loop never waits on a write).
    # The API served inside a test process (no lifespan) leaves that process's logging as it was.
    configure_logging("api", background=True)
    anyio.to_thread.current_default_thread_limiter().total_tokens = get_settings().api_threads
    publisher = await run_in_threadpool(_bootstrap)
    register_collectors()
    yield
    outbox.set_publisher(None)
    await run_in_threadpool(publisher.close)


class RequestContext:
    """Gives every request an id (the client's `X-Request-ID`, or a new one), echoes it on the response, binds
    it to every log line the request writes, counts and times the request by route, and writes its one
    access-log line (route template, never the raw path; no header, body or query)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers", []) if k == b"x-request-id"), None)
        request_id = given.decode() if given and _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        # Each request runs in a task of its own (its own copy of the context): what a request binds, such as
        # the tenant once its key is known (api.deps), never reaches another request's lines. Cleared first all
        # the same, should a server ever run two requests in one context.
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            LATENCY.labels(scope["method"], route).observe(elapsed)
            principal = state.get("principal")
            access.info(
                "request",
                method=scope["method"],
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 3),
                tenant_id=getattr(principal, "tenant_id", None),
                key_id=getattr(principal, "key_id", None),
            )
            # The context stays bound until the request's task ends: Starlette's last-resort handler (a 500),
            # outside this middleware, logs with it too.


def create_app() -> FastAPI:
    app = FastAPI(title="Asora", version="1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    errors.install(app)
    app.add_middleware(RejectBadText)
    app.add_middleware(RequestContext)
    app.include_router(health.router)
    for module in (
        tenants,
        runs,
        jobs,
        files,
        reports,
        exports,
        inventory,
        receipts,
        counts,
        returns,
        landed_costs,
        integrations,
        audit,
        ledger,
        tenant_settings,
        reposts,
        costing,
    ):
        app.include_router(module.router, prefix=PREFIX)
    openapi.install(app)
    return app


app = create_app()
