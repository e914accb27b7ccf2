"""The OpenAPI document's rules, checked over every operation the application serves (read from the app
itself, so a route added tomorrow is held to them): readable unique operation ids, a declared body wherever a
route reads one, bearer security on every authenticated route, the error envelope on the statuses each route
can answer, enums for statuses and kinds, formats for timestamps and decimals; and the docs pages served with
no external host."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from api.main import app
from api.openapi import RouteFacts, api_routes
from shared.errors import STATUS_BY_CODE
from shared.exports.models import ExportStatus
from shared.jobs.kinds import JobKind, JobStatus
from shared.journals.entries import JOURNAL_FORMATS
from shared.ledger.models import EventType
from shared.reports.schemas import COLUMNS, REPORTS
from shared.runs.models import RunStatus
from shared.schemas import DECIMAL_PATTERN
from shared.tenants.schemas import TENANT_ROLES

DOCUMENT = app.openapi()
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]
OPERATIONS = [(path, method, op) for path, ops in DOCUMENT["paths"].items() for method, op in ops.items()]
PUBLIC = {"health", "liveness", "metrics", "files_template"}
NO_BODY = {"vendors_enable", "vendors_disable", "runs_rollback"}
REF_ENVELOPE = "#/components/schemas/ErrorEnvelope"


def _op(operation_id: str) -> dict[str, Any]:
    return next(op for _, _, op in OPERATIONS if op["operationId"] == operation_id)


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = SCHEMAS[node["$ref"].rsplit("/", 1)[1]]
    return node


def _property(schema: str, name: str) -> dict[str, Any]:
    """A property's schema, its nullable variant unwrapped."""
    prop: dict[str, Any] = SCHEMAS[schema]["properties"][name]
    variants = [v for v in prop.get("anyOf", [prop]) if v.get("type") != "null"]
    return _resolve(variants[0])


def test_every_operation_has_a_readable_unique_operation_id():
    ids = [op.get("operationId") for _, _, op in OPERATIONS]
    assert all(ids), [(p, m) for p, m, op in OPERATIONS if not op.get("operationId")]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    unreadable = [i for i in ids if not re.fullmatch(r"[a-z]+(_[a-z]+)*", i) or "api_v1" in i]
    assert not unreadable, unreadable


def test_every_route_that_reads_a_body_declares_it():
    for path, route in api_routes(app):
        facts = RouteFacts.of(route)
        for method in route.methods or ():
            operation = DOCUMENT["paths"][path][method.lower()]
            reads = any(getattr(c, "reads_body", False) for c in _calls(route.dependant))
            assert reads == ("requestBody" in operation), (method, path)
            if facts.bodies:
                body = operation["requestBody"]
                assert body["required"] is True
                for media in body["content"].values():
                    assert media["schema"]["$ref"].rsplit("/", 1)[1] in SCHEMAS, (method, path)


def _calls(dependant: Any) -> list[Any]:
    return [c for sub in dependant.dependencies for c in (sub.call, *_calls(sub))]


def test_bodies_that_clients_send():
    run = _op("runs_create")["requestBody"]["content"]
    assert set(run) == {"application/json", "multipart/form-data"}
    upload = _resolve(run["multipart/form-data"]["schema"])
    assert upload["required"] == ["sales_file"]
    assert set(upload["properties"]) == {"sales_file", "lots_file", "mode", "dry_run", "tenant_id"}
    assert all(upload["properties"][f]["format"] == "binary" for f in ("sales_file", "lots_file"))
    for operation_id in (
        "categories_create",
        "items_update",
        "receipts_create",
        "counts_create",
        "exports_create",
        "tenants_create",
        "tenants_change_plan",
        "keys_create",
    ):
        assert "application/json" in _op(operation_id)["requestBody"]["content"], operation_id
    for operation_id in NO_BODY:
        assert "requestBody" not in _op(operation_id), operation_id


def test_security_is_the_bearer_key_on_every_authenticated_operation():
    assert DOCUMENT["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "API key",
        "description": DOCUMENT["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    for path, method, op in OPERATIONS:
        if op["operationId"] in PUBLIC:
            assert "security" not in op, (method, path)
            continue
        assert op["security"] == [{"bearerAuth": []}], (method, path)
        tenant_header = [p for p in op["parameters"] if p["in"] == "header" and p["name"] == "X-Tenant-ID"]
        assert len(tenant_header) == 1 and tenant_header[0]["required"] is False, (method, path)


def test_errors_are_the_envelope_where_they_can_happen():
    for path, method, op in OPERATIONS:
        responses = op["responses"]
        statuses = {int(s) for s in responses}
        authenticated = op["operationId"] not in PUBLIC
        expected = {422} if op.get("parameters") or op.get("requestBody") else set()
        if authenticated:
            expected |= {401, 403, 404, 503}
        if "requestBody" in op:
            expected.add(413)
        assert expected <= statuses, (method, path, expected - statuses)
        for status, response in responses.items():
            assert response["headers"]["X-Request-ID"] == {"$ref": "#/components/headers/X-Request-ID"}
            if int(status) >= 400 and op["operationId"] != "health":
                assert response["content"] == {"application/json": {"schema": {"$ref": REF_ENVELOPE}}}, (path, status)
    assert "HTTPValidationError" not in SCHEMAS


@pytest.mark.parametrize(
    ("operation_id", "status"),
    [
        ("categories_create", 402),
        ("items_create", 402),
        ("items_create", 409),
        ("exports_create", 402),
        ("runs_create", 402),
        ("tenants_create", 409),
        ("runs_rollback", 409),
        ("runs_journal_entry", 409),
        ("exports_download", 409),
    ],
)
def test_plan_limits_and_conflicts_are_declared(operation_id: str, status: int):
    assert str(status) in _op(operation_id)["responses"]


def test_the_envelope_schema():
    body = _resolve(SCHEMAS["ErrorEnvelope"]["properties"]["error"])
    assert set(body["required"]) == {"code", "reason", "message", "details", "request_id"}
    assert set(SCHEMAS["ErrorCode"]["enum"]) == set(STATUS_BY_CODE)


@pytest.mark.parametrize(
    ("schema", "name", "values"),
    [
        ("JobOut", "kind", {k.value for k in JobKind}),
        ("JobOut", "status", {s.value for s in JobStatus}),
        ("JobAccepted", "kind", {k.value for k in JobKind}),
        ("RunOut", "status", {s.value for s in RunStatus}),
        ("RunAccepted", "status", {s.value for s in RunStatus}),
        ("ExportOut", "status", {s.value for s in ExportStatus}),
        ("ExportOut", "report", set(REPORTS)),
        ("ExportCreate", "report", set(REPORTS)),
        ("LedgerEventOut", "event_type", {e.value for e in EventType}),
        ("TenantOut", "plan", {"free", "pro", "enterprise"}),
        ("TenantCreate", "role_model", {"standard", "simple"}),
        ("KeyCreate", "role", set(TENANT_ROLES)),
        ("CountOut", "status", {s.value for s in JobStatus}),
    ],
)
def test_statuses_and_kinds_are_enums(schema: str, name: str, values: set[str]):
    assert set(_property(schema, name)["enum"]) == values


def test_query_filters_are_enums():
    def query(operation_id: str, name: str) -> dict[str, Any]:
        param = next(p for p in _op(operation_id)["parameters"] if p["name"] == name)
        schema: dict[str, Any] = param["schema"]
        return _resolve(next(v for v in schema.get("anyOf", [schema]) if v.get("type") != "null"))

    assert set(query("runs_journal_entry", "format")["enum"]) == set(JOURNAL_FORMATS)
    assert set(query("jobs_list", "kind")["enum"]) == {k.value for k in JobKind}
    assert set(query("runs_list", "status")["enum"]) == {s.value for s in RunStatus}
    assert set(query("ledger_list", "event_type")["enum"]) == {e.value for e in EventType}


def _response_schemas() -> set[str]:
    """Every component a response refers to, directly or through another component."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] not in found:
                found.add(ref.rsplit("/", 1)[1])
                walk(SCHEMAS[ref.rsplit("/", 1)[1]])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk([op["responses"] for _, _, op in OPERATIONS])
    return found


def test_response_timestamps_are_date_times_and_decimals_are_patterned_strings():
    timestamps = decimals = 0
    for name in _response_schemas():
        for field, prop in SCHEMAS[name].get("properties", {}).items():
            variants = [v for v in prop.get("anyOf", [prop]) if v.get("type") != "null"]
            if field.endswith("_at") or field == "sale_date":
                assert all(v.get("format") == "date-time" for v in variants), (name, field)
                timestamps += 1
            if field in {"quantity", "unit_cost", "amount", "cogs", "total_cogs", "total_quantity", "value"}:
                assert all(v.get("type") == "string" and "pattern" in v for v in variants), (name, field)
                decimals += 1
    assert timestamps > 20 and decimals > 10
    assert _property("RunOut", "total_cogs")["pattern"] == DECIMAL_PATTERN


def test_decimal_inputs_accept_numbers_or_strings():
    line = SCHEMAS["ReceiptLineIn"]["properties"]["quantity"]
    assert {v["type"] for v in line["anyOf"]} == {"number", "string"}
    pattern = re.compile(next(v["pattern"] for v in line["anyOf"] if v["type"] == "string"))
    assert all(pattern.match(t) for t in ("12", "12.5", ".5", "12.34560"))
    assert not any(pattern.match(t) for t in ("1e5", "12.34567", "abc", ""))


def test_reports_declare_the_rows_they_send():
    """Reports are sent as prepared JSON bytes; the declared model is the rows' own (the conformance test
    checks real answers against it)."""
    for report in REPORTS:
        responses = _op(f"reports_{report.replace('-', '_')}")["responses"]
        schema = _resolve(responses["200"]["content"]["application/json"]["schema"])
        row = _resolve(schema["properties"]["items"]["items"])
        assert tuple(row["properties"]) == COLUMNS[report] and set(row["required"]) == set(COLUMNS[report])
    assert _resolve(SCHEMAS["ValuationReport"]["properties"]["total_value"])["pattern"] == r"^-?[0-9]+\.[0-9]{8}$"


# --- docs pages, offline ------------------------------------------------------------------------------------


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href", "spec-url") and value]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_everything_from_the_app_itself(page: str):
    client = TestClient(app)  # no lifespan: the pages need no database
    response = client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.IGNORECASE), "an external host in the page"
    parser = _Links()
    parser.feed(html)
    urls = parser.urls + re.findall(r"url: '([^']+)'", html)
    assert len(urls) >= 3, urls
    for url in urls:
        assert not urlsplit(url).netloc, url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url
    assert client.get("/openapi.json").json()["info"]["title"] == "Asora"
