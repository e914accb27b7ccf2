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
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import errors, openapi
from api.guards import RejectNul
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
    ledger,
    receipts,
    reports,
    runs,
    tenants,
)
from shared import db
from shared.config import get_settings
from shared.jobs import outbox
from shared.tenants import service as tenant_service
from worker import health as worker_health
from worker.publisher import BackgroundPublisher

log = logging.getLogger("asora.api")
PREFIX = "/api/v1"
# A client's X-Request-ID is echoed when it is a plain token; anything else is replaced by a new id.
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")


def _bootstrap() -> BackgroundPublisher:
    settings = get_settings()
    db.configure_process(statement_timeout_ms=settings.api_statement_timeout_ms)
    publisher = BackgroundPublisher()
    outbox.set_publisher(publisher)
    if settings.bootstrap_operator_key is not None:
        with db.unit_of_work() as session:
            tenant_service.ensure_operator_key(session, settings.bootstrap_operator_key.get_secret_value())
    worker_health.watch_workers()
    return publisher


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    anyio.to_thread.current_default_thread_limiter().total_tokens = get_settings().api_threads
    publisher = await run_in_threadpool(_bootstrap)
    register_collectors()
    yield
    outbox.set_publisher(None)
    await run_in_threadpool(publisher.close)


class RequestContext:
    """Gives every request an id (the client's `X-Request-ID`, or a new one), echoes it on the response, and
    counts and times the request by route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers", []) if k == b"x-request-id"), None)
        request_id = given.decode() if given and _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)


def create_app() -> FastAPI:
    app = FastAPI(title="Asora", version="1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    errors.install(app)
    app.add_middleware(RejectNul)
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
        integrations,
        audit,
        ledger,
        costing,
    ):
        app.include_router(module.router, prefix=PREFIX)
    openapi.install(app)
    return app


app = create_app()
