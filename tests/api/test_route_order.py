"""Every route answers in the same order: 401 for a missing or bad key before the body is read, then 403 for a
role without the permission (also before the body), then 422 for a bad body. The routes and their
permissions are read from the application itself, so a new route is covered the day it is added."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from shared.auth import ROLE_PERMISSIONS, Permission
from tests.support import Api, key_for, make_tenant, operator

PUBLIC = {"/health", "/api/v1/health", "/livez", "/metrics", "/api/v1/files/templates/{kind}"}
# Malformed bodies of three kinds, each must be 422 MALFORMED_JSON once the caller is allowed.
MALFORMED = {
    "not json": b"{not json",
    "invalid utf-8": b'{"name": "\xff\xfe"}',
    "nested 1,000 deep": b"[" * 1000 + b"]" * 1000,
}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    permission: Permission | None
    reads_body: bool

    def url(self) -> str:
        return re.sub(r"\{[^}]+\}", "x", self.path).removeprefix("/api/v1")


def _dependency_calls(dependant: Any) -> list[Any]:
    calls = []
    for sub in dependant.dependencies:
        calls.append(sub.call)
        calls += _dependency_calls(sub)
    return calls


def app_routes() -> list[Route]:
    from api.main import app

    found = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute):
            continue
        calls = _dependency_calls(route.dependant)
        permissions = {call.permission for call in calls if hasattr(call, "permission")}
        assert len(permissions) <= 1, f"{route.path} checks several permissions: {permissions}"
        reads_body = any(getattr(call, "reads_body", False) for call in calls)
        for method in sorted(route.methods or ()):
            found.append(Route(method, str(context.path), next(iter(permissions), None), reads_body))
    return found


ROUTES = app_routes()


def _lacking(permission: Permission) -> str | None:
    """A standard-model tenant role without the permission, if there is one."""
    roles = ROLE_PERMISSIONS["standard"]
    return next((role for role, granted in roles.items() if permission not in granted), None)


@pytest.fixture(scope="module")
def callers(in_process: str) -> dict[str, Api]:
    tenant_id, owner = make_tenant(in_process, prefix="order")
    apis = {role: key_for(in_process, tenant_id, role) for role in ("manager", "clerk", "viewer")}
    return {
        "owner": owner,
        **apis,
        "operator": operator(in_process),
        "operator@tenant": operator(in_process, tenant_id),
    }


def _allowed(callers: dict[str, Api], permission: Permission) -> Api:
    if permission in ROLE_PERMISSIONS["platform"]["operator"] and permission == Permission.TENANTS_MANAGE:
        return callers["operator"]
    return callers["owner"]


def _send(api: Api, route: Route, body: bytes) -> Any:
    return api.http.request(route.method, route.url(), content=body, headers={"Content-Type": "application/json"})


def test_every_route_is_public_or_checks_one_permission():
    assert len(ROUTES) > 50, "the walk found too few routes: is iter_route_contexts still how FastAPI lists them?"
    assert {r.path for r in ROUTES} >= PUBLIC
    unguarded = {r.path for r in ROUTES if r.permission is None} - PUBLIC
    assert not unguarded, f"routes without a permission dependency: {unguarded}"
    writes_without_body = [r for r in ROUTES if r.method in ("PUT", "PATCH") and not r.reads_body]
    assert not writes_without_body, "PUT and PATCH routes read their body through api.deps.json_body"


@pytest.mark.parametrize("route", [r for r in ROUTES if r.permission is not None], ids=lambda r: f"{r.method} {r.path}")
def test_401_then_403_then_422(route: Route, callers: dict[str, Api], in_process: str):
    assert route.permission is not None
    garbage = MALFORMED["not json"]
    # 1. no key, and a key that does not exist: 401 whatever the body
    for api in (Api(in_process, None), Api(in_process, "asora_not_a_key")):
        response = _send(api, route, garbage)
        assert response.status_code == 401, (route, response.text)
        assert response.json()["error"]["code"] == "UNAUTHENTICATED"
    # 2. a role without the permission: 403 whatever the body
    role = _lacking(route.permission)
    refused = callers[role] if role else callers["operator"]  # every tenant role may read; an operator needs a tenant
    response = _send(refused, route, garbage)
    assert response.status_code == 403, (route, role, response.text)
    assert response.json()["error"]["code"] == "FORBIDDEN"
    # 3. allowed: a malformed body is 422 MALFORMED_JSON, before anything else is looked at
    if route.reads_body:
        allowed = _allowed(callers, route.permission)
        for name, body in MALFORMED.items():
            response = _send(allowed, route, body)
            assert response.status_code == 422, (route, name, response.text)
            error = response.json()["error"]
            assert (error["code"], error["reason"]) == ("VALIDATION_FAILED", "MALFORMED_JSON"), (name, error)
