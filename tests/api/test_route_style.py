"""One style for every route (issue 10): route handlers are sync `def`, run in the threadpool, so no handler
can block the event loop with database or Redis work. Coroutines are allowed only where they are edge
plumbing that touches no database on the loop, each named here with the reason; a new coroutine fails this
test until it is added, with its reason, on purpose."""

from __future__ import annotations

import inspect
from typing import Any

from fastapi.routing import APIRoute, iter_route_contexts

from tests.api.test_route_order import _dependency_calls

# Handlers that are coroutines, and why that is safe.
ASYNC_HANDLERS = {
    "health_check": "runs its checks in a thread lane of its own, so a probe is never starved by the shared pool",
}
# Dependencies that are coroutines, and why that is safe.
ASYNC_DEPENDENCIES = {
    "authenticate": "answers from the key cache on the loop; a lookup in the database runs in the threadpool",
    "check": "require(permission): compares the principal's role with a permission, no I/O",
    "tenant_session": "notes the tenant on the session; the scope is set when its transaction begins, in a thread",
    "tenant_id": "the principal's tenant, no I/O",
    "get_session": "makes and closes a session (no I/O); COMMIT and ROLLBACK run in the route's own thread",
    "read_body": "awaits the request body from the ASGI server",
    "parse": "json_body: parses a small body at once and a large one in the threadpool; no database",
    "run_submission": "POST /runs body (JSON or multipart): parsed like json_body; no database",
    "scope": "report parameters: pure validation, no I/O",
}


def _routes() -> list[APIRoute]:
    from api.main import app

    return [c.original_route for c in iter_route_contexts(app.routes) if isinstance(c.original_route, APIRoute)]


def _name(call: Any) -> str:
    return getattr(call, "__name__", type(call).__name__)


def _is_coroutine(call: Any) -> bool:
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(getattr(call, "__call__", None))  # noqa: B004


def _is_async_generator(call: Any) -> bool:
    return inspect.isasyncgenfunction(call)


def test_route_handlers_are_sync_except_the_named_ones():
    handlers = {_name(route.endpoint) for route in _routes() if _is_coroutine(inspect.unwrap(route.endpoint))}
    assert handlers == set(ASYNC_HANDLERS), f"coroutine handlers: {sorted(handlers)}"


def test_every_sync_handler_makes_one_trip_to_the_threadpool():
    """api.deps.in_one_trip: the handler and its COMMIT in one thread, its response model checked on the loop."""
    routes = _routes()
    sync = [route for route in routes if not _is_coroutine(inspect.unwrap(route.endpoint))]
    assert len(sync) > 50, "the walk found few sync routes: it would pass on anything"
    without = sorted(route.path for route in sync if not getattr(route.endpoint, "one_trip", False))
    assert not without, f"sync routes outside in_one_trip: {without}"


def test_async_dependencies_are_only_the_named_edge_plumbing():
    found = set()
    for route in _routes():
        for call in _dependency_calls(route.dependant):
            if _is_coroutine(call) or _is_async_generator(call):
                found.add(_name(call))
    assert found <= set(ASYNC_DEPENDENCIES), f"unexpected async dependencies: {sorted(found - set(ASYNC_DEPENDENCIES))}"
    assert {"get_session", "read_body"} <= found, "the walk found no async dependency: it would pass on anything"
