"""The FastAPI application: routers, error envelope, request ids, metrics, bootstrap key."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from api import errors
from api.guards import RejectNul
from api.metrics import LATENCY, REQUESTS, register_collectors
from api.routes import audit, counts, exports, files, health, inventory, jobs, ledger, receipts, reports, runs, tenants
from shared import db
from shared.config import get_settings
from shared.tenants import service as tenant_service

log = logging.getLogger("asora.api")
PREFIX = "/api/v1"


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    if settings.bootstrap_operator_key is not None:
        with db.unit_of_work() as session:
            tenant_service.ensure_operator_key(session, settings.bootstrap_operator_key.get_secret_value())
    register_collectors()
    yield


def create_app() -> FastAPI:
    app = FastAPI(title="Asora", version="1.0", lifespan=lifespan)
    errors.install(app)
    app.add_middleware(RejectNul)

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        request.state.request_id = request_id[:64]
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        REQUESTS.labels(request.method, path, str(response.status_code)).inc()
        LATENCY.labels(request.method, path).observe(time.perf_counter() - started)
        response.headers["X-Request-ID"] = request.state.request_id
        return response

    app.include_router(health.router)
    for module in (tenants, runs, jobs, files, reports, exports, inventory, receipts, counts, audit, ledger):
        app.include_router(module.router, prefix=PREFIX)
    return app


app = create_app()
