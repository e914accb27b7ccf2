"""Request-scoped dependencies. Every route resolves them in the same order:

1. the principal from the bearer key (401 before the body is read);
2. the route's permission (`Reader`, `RunsWriter`, ...; 403, also before the body);
3. the tenant session: the request's one session, scoped to the principal's tenant;
4. the body, parsed by the one JSON parser (`json_body`) or the one form parser (`form_body`) (422).

The session commits when the route returns and rolls back when it raises, before the response is sent, so a
route never commits; jobs it accepted are published after that commit (`shared.jobs.outbox`).
`tests/api/test_route_order.py` walks every route of the app and checks 401, then 403, then 422.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import weakref
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
import structlog
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from shared import db
from shared.auth import Permission, Principal
from shared.base import text_limit
from shared.config import get_settings
from shared.errors import Forbidden, TooLarge, ValidationFailed
from shared.jobs.models import IdempotencyKey
from shared.tenants import service as tenants

B = TypeVar("B", bound=BaseModel)


# --- 1. the principal ---------------------------------------------------------------------------------------


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


async def authenticate(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_tenant_id: Annotated[
        str | None, Header(alias="X-Tenant-ID", description="operator keys: the tenant to act on")
    ] = None,
) -> Principal:
    raw = _bearer(authorization)
    principal = tenants.key_cache.get(tenants.hash_key(raw)) if raw else None
    if principal is None or (principal.tenant_id is None and x_tenant_id is not None):
        # A key not in this process's cache (or an operator naming a tenant): the lookup reads the database,
        # so it runs in the threadpool, never on the event loop.
        principal = await run_in_threadpool(tenants.authenticate, raw, x_tenant_id)
    elif x_tenant_id is not None and x_tenant_id != principal.tenant_id:
        principal = tenants.authenticate(raw, x_tenant_id)  # raises TENANT_MISMATCH without touching the database
    request.state.principal = principal
    # Every later line of this request (the route's, the access log's) names the tenant it acted for.
    if principal.tenant_id is not None:
        structlog.contextvars.bind_contextvars(tenant_id=principal.tenant_id)
    return principal


PrincipalDep = Annotated[Principal, Depends(authenticate)]


# --- 2. permissions -----------------------------------------------------------------------------------------


def require(permission: Permission) -> Callable[..., Any]:
    """A dependency that refuses (403) a principal whose role lacks `permission`."""

    async def check(principal: PrincipalDep) -> Principal:
        principal.require(permission)
        return principal

    check.permission = permission  # type: ignore[attr-defined]  # read by the route-order test and the docs
    return check


Reader = Annotated[Principal, Depends(require(Permission.READ))]
TenantsManager = Annotated[Principal, Depends(require(Permission.TENANTS_MANAGE))]
KeysManager = Annotated[Principal, Depends(require(Permission.KEYS_MANAGE))]
MasterWriter = Annotated[Principal, Depends(require(Permission.MASTER_WRITE))]
ReceiptsWriter = Annotated[Principal, Depends(require(Permission.RECEIPTS_WRITE))]
CountsWriter = Annotated[Principal, Depends(require(Permission.COUNTS_WRITE))]
RunsWriter = Annotated[Principal, Depends(require(Permission.RUNS_WRITE))]
ExportsCreator = Annotated[Principal, Depends(require(Permission.EXPORTS_CREATE))]
IntegrationsManager = Annotated[Principal, Depends(require(Permission.INTEGRATIONS_MANAGE))]
IntegrationsDispatcher = Annotated[Principal, Depends(require(Permission.INTEGRATIONS_DISPATCH))]
SettingsManager = Annotated[Principal, Depends(require(Permission.SETTINGS_MANAGE))]


# --- 3. the session -----------------------------------------------------------------------------------------


# The request's session, for the one-trip route below: set by `get_session` in the request's context, which the
# threadpool call copies, so the endpoint's thread sees the same session its dependencies were given.
_REQUEST_SESSION: contextvars.ContextVar[Session | None] = contextvars.ContextVar("asora_request_session", default=None)


def _call_and_end(endpoint: Callable[..., Any], arguments: dict[str, Any]) -> Any:
    """The route, then its transaction's end: ROLLBACK when it raised; COMMIT when it returned, and a COMMIT that
    fails rolls back and raises, so the route answers the error rather than a 2xx."""
    session = _REQUEST_SESSION.get()
    try:
        result = endpoint(**arguments)
        if session is not None:
            session.commit()
    except BaseException:
        if session is not None:
            session.rollback()
        raise
    return result


_LANES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, anyio.CapacityLimiter]] = (
    weakref.WeakKeyDictionary()
)


def lane(name: str, threads: int) -> anyio.CapacityLimiter:
    """A named lane of `threads` threads beside the shared pool, one per event loop (a test client runs its own):
    work in it never queues behind the pool's."""
    lanes = _LANES.setdefault(asyncio.get_running_loop(), {})
    found = lanes.get(name)
    if found is None:
        found = lanes[name] = anyio.CapacityLimiter(threads)
    return found


def reads_lane() -> anyio.CapacityLimiter:
    """GET routes run in a lane of their own (half as many threads as the shared pool, at least two): a client
    polling its job is never queued behind a burst of intake holding every pooled thread."""
    return lane("reads", max(2, get_settings().api_threads // 2))


def in_one_trip(endpoint: Callable[..., Any], *, reads: bool = False) -> Callable[..., Any]:
    """A sync route as FastAPI's one trip to the threadpool: the route runs there, and its transaction is
    committed (or rolled back) in the same thread right after it, before the response is sent. FastAPI would
    otherwise make three trips for a GET (the route, the response model's validation, and the commit), each a
    hand-off between threads that costs more CPU than the query it waits for (docs/performance.md). Being a
    coroutine to FastAPI, the wrapper's response model is checked on the event loop: the route's value is
    already a validated model, so that is cheap. `reads`: the route runs in the reads lane (`reads_lane`)."""

    @functools.wraps(endpoint)
    async def route(**arguments: Any) -> Any:
        limiter = reads_lane() if reads else None
        return await anyio.to_thread.run_sync(_call_and_end, endpoint, arguments, limiter=limiter)

    route.one_trip = True  # type: ignore[attr-defined]  # read by tests/api/test_route_style.py

    return route


class OneTripRoute(APIRoute):
    """The route class of every router (`api.deps.api_router`): sync endpoints run through `in_one_trip`, GET
    routes in the reads lane."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = in_one_trip(endpoint, reads=set(kwargs.get("methods") or ()) == {"GET"})
        super().__init__(path, endpoint, **kwargs)


def api_router(**kwargs: Any) -> APIRouter:
    """An `APIRouter` whose routes are `OneTripRoute`s: every route module makes its router here."""
    return APIRouter(route_class=OneTripRoute, **kwargs)


async def _end(step: Callable[[], None]) -> None:
    """Runs a ROLLBACK or close in a thread of its own lane, never the shared pool, for the rare request whose
    transaction is still open when its route did not run (a dependency after the session failed): a
    transaction that holds a row lock must be able to end while every pooled thread waits on that lock."""
    await anyio.to_thread.run_sync(step, limiter=anyio.CapacityLimiter(1))


def _roll_back_and_close(session: Session) -> None:
    try:
        session.rollback()
    finally:
        session.close()


async def get_session() -> AsyncIterator[Session]:
    """The request's one transaction, ended by the route's own trip to the threadpool (`in_one_trip`): committed
    when the route returns, rolled back when it raises. Making the session touches no database, so it is made on
    the event loop, and closing one whose transaction has ended touches none either."""
    session = db.get_sessionmaker()()
    _REQUEST_SESSION.set(session)
    try:
        yield session
    finally:
        _REQUEST_SESSION.set(None)
        if session.in_transaction():  # the route never ran (a later dependency failed): end it off the loop
            await _end(lambda: _roll_back_and_close(session))
        else:
            session.close()


# scope="function": the commit runs as the route returns, before the response is sent, so a failed commit
# is answered as an error rather than after a 2xx has gone out.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def tenant_of(principal: Principal, body_tenant_id: str | None = None) -> str:
    """The tenant a request acts on: always the key's (an operator's X-Tenant-ID); a differing body
    tenant_id is refused."""
    if principal.tenant_id is None:
        raise Forbidden(
            "operator requests on tenant data must name the tenant in X-Tenant-ID", reason="TENANT_REQUIRED"
        )
    if body_tenant_id is not None and body_tenant_id != principal.tenant_id:
        raise Forbidden("tenant_id in the request does not match the authenticated tenant", reason="TENANT_MISMATCH")
    return principal.tenant_id


async def tenant_session(session: SessionDep, principal: PrincipalDep) -> Session:
    db.scope_session(session, tenant_of(principal))
    return session


TenantSession = Annotated[Session, Depends(tenant_session)]


async def tenant_id(principal: PrincipalDep) -> str:
    return tenant_of(principal)


TenantId = Annotated[str, Depends(tenant_id)]


# --- 4. bodies ----------------------------------------------------------------------------------------------


def _too_large(limit: int) -> TooLarge:
    return TooLarge(
        f"the request body is larger than {limit} bytes",
        reason="BODY_TOO_LARGE",
        details=[{"field": "body", "message": f"at most {limit} bytes"}],
    )


async def read_body(request: Request) -> bytes:
    limit = get_settings().max_json_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def malformed_json(message: str = "the request body is not valid JSON") -> ValidationFailed:
    return ValidationFailed(message, reason="MALFORMED_JSON", details=[{"field": "body", "message": message}])


def parse_json(raw: bytes) -> Any:
    """The one JSON parser: strict UTF-8, numbers kept as their literal digits (`parse_float=str`, so nothing
    passes through binary floating point), and bounded nesting."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise malformed_json("the request body is not valid UTF-8") from exc
    if "\x00" in text or "\\u0000" in text:  # PostgreSQL text cannot hold NUL: refused before it is parsed
        raise ValidationFailed(
            "the request contains a NUL character, which no field may hold",
            reason="BAD_REQUEST",
            details=[{"field": "body", "message": "NUL character"}],
        )
    try:
        return json.loads(text, parse_float=str)
    except RecursionError as exc:
        raise malformed_json("the request body is nested too deeply") from exc
    except ValueError as exc:
        raise malformed_json() from exc


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors as the envelope's details: `row` is the 1-based index of the list item concerned."""
    details = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False)[:100]:
        parts = [p for p in error["loc"] if p != "body"]
        detail: dict[str, Any] = {"field": ".".join(str(p) for p in parts) or "body", "message": error["msg"]}
        rows = [p for p in parts if isinstance(p, int)]
        if rows:
            detail["row"] = rows[0] + 1
            detail["field"] = str(parts[-1])
        details.append(detail)
    return details


def validate_body(model: type[B], data: Any) -> B:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(
            "the request body is invalid", reason="BAD_REQUEST", details=validation_details(exc)
        ) from exc
    except RecursionError as exc:
        raise malformed_json("the request body is nested too deeply") from exc


# A body this small parses in well under a millisecond: on the event loop, without a trip to the threadpool.
INLINE_PARSE_BYTES = 64 * 1024


def parse_body(model: type[B], raw: bytes) -> B:
    return validate_body(model, parse_json(raw))


def json_body(model: type[B]) -> Any:
    """`body: Annotated[Model, json_body(Model)]`, declared after the principal and permission parameters.
    A large body is parsed in the threadpool (it is CPU work), a small one at once."""

    async def parse(raw: Annotated[bytes, Depends(read_body)]) -> B:
        if len(raw) <= INLINE_PARSE_BYTES:
            return parse_body(model, raw)
        return await run_in_threadpool(parse_body, model, raw)

    parse.body_model = model  # type: ignore[attr-defined]  # the OpenAPI requestBody (api/openapi.py)
    parse.reads_body = True  # type: ignore[attr-defined]  # read by the route-order test
    return Depends(parse)


async def form_body(request: Request) -> FormData:
    """The one multipart parser: uploads are spooled to temporary files; a malformed form is a 422."""
    limit = get_settings().max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    try:
        return await request.form(max_files=4, max_fields=16)
    except Exception as exc:  # python-multipart and Starlette raise several types for a malformed body
        raise ValidationFailed(
            "the request is not a valid multipart/form-data body",
            reason="BAD_MULTIPART",
            details=[{"field": "body", "message": str(exc)[:200] or exc.__class__.__name__}],
        ) from exc


FormBody = Annotated[FormData, Depends(form_body)]


# --- query parameters ---------------------------------------------------------------------------------------


def as_utc(value: datetime | None) -> datetime | None:
    """Query timestamps without a zone are read as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


LimitQuery = Annotated[int, Query(ge=1, le=1000, description="page size")]
From = Annotated[datetime | None, Query(alias="from", description="inclusive; ISO 8601 (UTC if no zone)")]
To = Annotated[datetime | None, Query(alias="to", description="exclusive; ISO 8601 (UTC if no zone)")]
SafeQuery = Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
CursorQuery = Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")]
IdempotencyKeyHeader = Annotated[
    str | None, Header(alias="Idempotency-Key", max_length=text_limit(IdempotencyKey, "key"))
]
