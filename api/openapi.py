"""The OpenAPI document and the offline docs pages.

FastAPI documents parameters and response models. What it cannot see is read from each route's dependencies
(the chain in `api/deps.py`), so a route added tomorrow is described correctly without anyone remembering to:

- the request body: bodies are parsed by `json_body(Model)` after authentication (so 401 and 403 come before
  the body), invisible to FastAPI; each body dependency carries `body_model`, or `body_models` by media type;
- the security: a route that depends on `authenticate` takes a bearer key: 401, 403, and 404 (an operator's
  `X-Tenant-ID` may name no tenant, a path id nothing in the tenant);
- the errors: 422 wherever there is input, 413 wherever there is a body, 503 wherever the database is touched.

Only a route's service knows whether it can meet a plan ceiling (402) or a conflict (409): such routes say so
with `responses=errors(402)`. Every error is the contract's envelope (`shared.schemas.ErrorEnvelope`); every
response carries `X-Request-ID`. `tests/api/test_openapi.py` holds these rules true for every route.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import HTMLResponse

from api import deps
from shared.schemas import ErrorEnvelope

REF = "#/components/schemas/"
SECURITY_SCHEME = "bearerAuth"
ERRORS: dict[int, str] = {
    401: "UNAUTHENTICATED: the API key is missing, unknown or revoked",
    402: "PLAN_LIMIT_EXCEEDED: the tenant's plan ceiling would be passed (details name limit, used, max)",
    403: "FORBIDDEN: the role lacks the permission (an operator never writes the ledger), or a tenant_id or "
    "X-Tenant-ID names another tenant",
    404: "NOT_FOUND: no such resource in the tenant (absent or another tenant's), or an operator's X-Tenant-ID "
    "names no tenant",
    409: "CONFLICT: the resource's state forbids it now (reasons: RUN_IN_PROGRESS, ROLLBACK_BLOCKED, "
    "ALREADY_EXISTS, ...)",
    413: "VALIDATION_FAILED: the body or an uploaded file is larger than its limit",
    422: "VALIDATION_FAILED: invalid input or state (the reason and details name the row and field)",
    503: "UNAVAILABLE: a dependency is down or the tenant is busy (then with Retry-After); nothing was accepted",
}
REQUEST_ID = {
    "description": "the request's id: the client's X-Request-ID when it is a plain token, else a new one",
    "required": True,
    "schema": {"type": "string"},
}
OPERATION_KEYS = ("tags", "summary", "description", "operationId", "security", "parameters", "requestBody")
DESCRIPTION = """Multi-tenant inventory ledger and FIFO cost of goods.

Authenticate with `Authorization: Bearer <API key>`. A tenant key acts on its own tenant; an operator key
names the tenant it acts on in `X-Tenant-ID`. Errors are `{"error": {code, reason, message, details,
request_id}}`. Decimals are strings in responses and numbers or strings in requests; timestamps are ISO 8601
(UTC in responses). Enqueueing POSTs answer `202` with the job and honour `Idempotency-Key`."""


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route decorator: error answers that only the route's service can produce."""
    return {status: {"model": ErrorEnvelope, "description": ERRORS[status]} for status in statuses}


def content(media_type: str, description: str, schema: dict[str, Any] | None = None) -> dict[int | str, Any]:
    """`responses=` for a route answering 200 with something other than JSON (a file, Prometheus text)."""
    return {200: {"description": description, "content": {media_type: {"schema": schema or {"type": "string"}}}}}


# --- what a route's dependencies say ------------------------------------------------------------------------


def _calls(dependant: Any) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


@dataclass(frozen=True)
class RouteFacts:
    authenticated: bool
    touches_database: bool
    bodies: dict[str, type[BaseModel]]  # media type -> model

    @classmethod
    def of(cls, route: APIRoute) -> RouteFacts:
        calls = list(_calls(route.dependant))
        bodies: dict[str, type[BaseModel]] = {}
        for call in calls:
            if hasattr(call, "body_models"):
                bodies.update(call.body_models)
            elif hasattr(call, "body_model"):
                bodies["application/json"] = call.body_model
        authenticated = deps.authenticate in calls
        # Authentication reads the key from the database when it is not cached.
        return cls(authenticated, authenticated or deps.get_session in calls, bodies)

    def error_statuses(self, operation: dict[str, Any]) -> list[int]:
        statuses = []
        if self.authenticated:
            statuses += [401, 403, 404]
        if self.bodies:
            statuses.append(413)
        if self.bodies or operation.get("parameters"):
            statuses.append(422)
        if self.touches_database:
            statuses.append(503)
        return statuses


def api_routes(app: FastAPI) -> Iterator[tuple[str, APIRoute]]:
    """(path, route) of every route in the schema, with its prefix."""
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and route.include_in_schema:
            yield str(context.path), route


# --- the document -------------------------------------------------------------------------------------------


def _rename_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF) and ref[len(REF) :] in renames:
            return {**node, "$ref": REF + renames[ref[len(REF) :]]}
        return {key: _rename_refs(value, renames) for key, value in node.items()}
    if isinstance(node, list):
        return [_rename_refs(value, renames) for value in node]
    return node


def _register(
    components: dict[str, Any], models: list[tuple[type[BaseModel], JsonSchemaMode]]
) -> dict[type[BaseModel], str]:
    """Add the schemas of `models` (with mode "validation" or "serialization") to `components`; returns each
    model's $ref. A name FastAPI already gave to a different schema gets the suffix FastAPI itself uses."""
    keys, generated = models_json_schema(models, ref_template=REF + "{model}")
    definitions: dict[str, Any] = generated.get("$defs", {})
    renames = {
        name: f"{name}-Input"
        for name, schema in definitions.items()
        if name in components and components[name] != schema
    }
    for name, schema in definitions.items():
        components.setdefault(renames.get(name, name), _rename_refs(schema, renames))
    return {model: _rename_refs(keys[(model, mode)], renames)["$ref"] for model, mode in models}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": REF + "ErrorEnvelope"}}}}


def _complete(operation: dict[str, Any], facts: RouteFacts, refs: dict[type[BaseModel], str]) -> dict[str, Any]:
    """The operation with its body, security and errors (keys in the order a reader expects)."""
    if facts.bodies:
        operation["requestBody"] = {
            "required": True,
            "content": {media: {"schema": {"$ref": refs[model]}} for media, model in facts.bodies.items()},
        }
    if facts.authenticated:
        operation["security"] = [{SECURITY_SCHEME: []}]
    responses: dict[str, Any] = operation.pop("responses", {})
    responses.pop("422", None)  # FastAPI's HTTPValidationError: our 422 is the envelope
    for status in facts.error_statuses(operation):
        responses.setdefault(str(status), _error_response(ERRORS[status]))
    for response in responses.values():
        response.setdefault("headers", {})["X-Request-ID"] = {"$ref": "#/components/headers/X-Request-ID"}
    ordered = {key: operation.pop(key) for key in OPERATION_KEYS if key in operation}
    return {**ordered, **operation, "responses": dict(sorted(responses.items()))}


def build(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=DESCRIPTION,
        routes=app.routes,
        tags=app.openapi_tags,
        servers=app.servers,
    )
    components = schema.setdefault("components", {})
    definitions = components.setdefault("schemas", {})
    facts = {(path, method): RouteFacts.of(route) for path, route in api_routes(app) for method in route.methods or ()}
    bodies = {model for f in facts.values() for model in f.bodies.values()}
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (m, "validation") for m in sorted(bodies, key=lambda m: m.__name__)
    ]
    if "ErrorEnvelope" not in definitions:  # not yet registered by a route's `errors(...)`
        models.append((ErrorEnvelope, "serialization"))
    refs = _register(definitions, models)
    components["securitySchemes"] = {
        SECURITY_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "API key",
            "description": "an Asora API key (`asora keys create`, or POST /api/v1/keys)",
        }
    }
    components["headers"] = {"X-Request-ID": REQUEST_ID}
    for (path, method), route_facts in facts.items():
        operations = schema["paths"][path]
        operations[method.lower()] = _complete(operations[method.lower()], route_facts, refs)
    for unused in ("HTTPValidationError", "ValidationError"):
        definitions.pop(unused, None)
    components["schemas"] = dict(sorted(definitions.items()))
    return schema


# --- docs pages, served from an installed package (no CDN) ----------------------------------------------------

DOCS_ASSETS = "/docs/assets"


def _assets_directory() -> str:
    # fastapi-offline ships Swagger UI's and ReDoc's standalone builds as package data.
    return str(resources.files("fastapi_offline") / "static")


def install(app: FastAPI) -> None:
    """Serve the completed document at /openapi.json, and /docs (Swagger UI) and /redoc (ReDoc) with their
    assets from the application itself. Create the app with `docs_url=None, redoc_url=None`."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the document
    openapi_url = app.openapi_url or "/openapi.json"

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            oauth2_redirect_url=None,
            # The online validator badge would call out to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        )

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} API",
            redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )

    app.mount(DOCS_ASSETS, StaticFiles(directory=_assets_directory()), name="docs-assets")
    app.add_route("/docs", swagger_ui, include_in_schema=False)
    app.add_route("/redoc", redoc, include_in_schema=False)
