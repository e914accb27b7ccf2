"""Every limit, overflowed: the request body, an uploaded file, a run's rows under the tenant's plan, and each
text field's length. Each overflow is a clear 413, 402 or 422 in the envelope, naming what overflowed, and
nothing is accepted. Text limits come from one place, the column each field fills (`shared.base.text_limit`):
the map below fails when a VARCHAR column is added without saying whether a user fills it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import String

import shared.models  # noqa: F401  # every model, so the metadata holds every table
from shared.auth import Permission
from shared.base import Base
from shared.config import get_settings
from shared.inventory import schemas as inventory
from shared.reports.schemas import ID_MAX, SKU_MAX
from shared.runs.validation import MAX_TEXT
from tests.api.test_route_order import ROUTES, Route
from tests.support import Api, MasterData, make_tenant, operator, query, seed_master_data, unique_tenant

# --- the one source: each user-filled VARCHAR column and the limit its validation uses ------------------------

USER_FILLED: dict[tuple[str, str], int] = {
    **{(table, "name"): inventory.NAME_MAX for table in ("categories", "hubs", "bins", "vendors", "items")},
    ("items", "sku"): inventory.SKU_MAX,
    ("count_lines", "sku"): inventory.SKU_MAX,
    ("sku_valuation_methods", "sku"): inventory.SKU_MAX,  # a SKU named in PUT /valuation-methods/{sku}
    ("ledger_events", "sku"): inventory.SKU_MAX,
    ("lots", "sku"): inventory.SKU_MAX,
    ("ledger_events", "lot_id"): inventory.LOT_ID_MAX,
    ("lots", "lot_id"): inventory.LOT_ID_MAX,
    ("ledger_events", "reference"): inventory.LOT_ID_MAX,  # a lot id, a vendor id or a count id
    **dict.fromkeys(
        [
            ("bins", "hub_id"),
            ("items", "category_id"),
            ("items", "default_bin_id"),
            ("counts", "bin_id"),
            ("lots", "bin_id"),
            ("lots", "vendor_id"),
            ("ledger_events", "bin_id"),
        ],
        inventory.ID_MAX,
    ),
    ("tenants", "id"): inventory.TENANT_ID_MAX,
    # a run's rows, checked by the run job
    ("run_sales", "sale_id"): MAX_TEXT["sale_id"],
    ("run_allocations", "sale_id"): MAX_TEXT["sale_id"],
    ("run_allocations", "lot_id"): MAX_TEXT["lot_id"],
    **{(t, "sku"): MAX_TEXT["sku"] for t in ("run_sales", "run_allocations", "run_skus", "costed_skus")},
    # returns and landed costs name the sale or lot they act on
    ("returns", "sale_id"): inventory.LOT_ID_MAX,
    ("returns", "lot_id"): inventory.LOT_ID_MAX,
    ("landed_costs", "lot_id"): inventory.LOT_ID_MAX,
    ("landed_costs", "memo"): 500,
    # report filters read these columns
    ("lots", "source_run_id"): ID_MAX,
    ("ledger_events", "run_id"): ID_MAX,
}
# Filled by the API's own schemas (read from their models in shared/*/schemas.py): checked through the API below.
SCHEMA_FILLED = {("api_keys", "name"), ("integrations", "name"), ("integrations", "url_redacted"), ("tenants", "name"),
                 ("idempotency_keys", "key")}  # fmt: skip
# Written by Asora itself: ids it makes, hashes, enum texts, codes, messages it composes (bounded where written).
GENERATED = {
    "api_keys": {"id", "tenant_id", "role", "key_hash"},
    "audit_events": {"tenant_id", "actor_key_id", "actor_role", "action", "target", "outcome", "reason",
                     "request_id", "job_id"},
    "bins": {"id", "tenant_id"}, "categories": {"id", "tenant_id"}, "hubs": {"id", "tenant_id"},
    "vendors": {"id", "tenant_id"}, "items": {"id", "tenant_id"}, "costed_skus": {"tenant_id"},
    "count_lines": {"count_id", "tenant_id"}, "counts": {"id", "tenant_id", "job_id"},
    "exports": {"id", "tenant_id", "job_id", "report", "params_hash", "filename", "sha256"},
    "idempotency_keys": {"tenant_id", "request_hash"},
    "integration_dispatches": {"id", "tenant_id", "integration_id", "requested_by_key_id", "requested_by_role",
                               "stopped_at_event_id", "outcome"},
    "integration_outbox": {"integration_id", "tenant_id", "event_id", "dispatch_id", "error"},
    "integrations": {"id", "tenant_id", "kind"},
    "job_blobs": {"job_id", "name", "tenant_id"},
    "jobs": {"id", "tenant_id", "stream", "actor_key_id", "actor_role", "worker"},
    "ledger_events": {"tenant_id", "job_id"}, "ledger_heads": {"tenant_id", "hash"},
    "lots": {"tenant_id", "source_job_id"},
    "plan_limits": {"plan", "limit_name"}, "plans": {"name"},
    "run_allocations": {"run_id", "tenant_id"}, "run_sales": {"run_id", "tenant_id"},
    "run_skus": {"run_id", "tenant_id"},
    "run_validation_errors": {"run_id", "tenant_id", "field", "reason", "message", "file"},
    "runs": {"id", "job_id", "tenant_id", "mode", "rolled_back_by"},
    "tenant_counters": {"tenant_id"},
    "returns": {"id", "tenant_id", "job_id"},
    "return_lines": {"return_id", "tenant_id", "run_id", "sku", "source_lot_id", "lot_id"},
    "landed_costs": {"id", "tenant_id", "job_id"}, "landed_cost_lines": {"landed_cost_id", "tenant_id", "run_id"},
    "repost_runs": {"job_id", "tenant_id", "run_id", "reversed_by"},
    "sku_valuation_methods": {"tenant_id", "method", "since_run_id"},
    "tenants": {"plan", "role_model", "backdated_entries", "valuation_method", "cogs_account_code", "cogs_account_name",
                "inventory_account_code", "inventory_account_name"},
}  # fmt: skip


def _varchar_columns() -> dict[tuple[str, str], int]:
    return {
        (table.name, column.name): column.type.length
        for table in Base.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, String) and column.type.length
    }


def test_every_varchar_column_is_user_filled_with_its_limit_or_written_by_asora() -> None:
    columns = _varchar_columns()
    generated = {(table, column) for table, names in GENERATED.items() for column in names}
    classified = set(USER_FILLED) | SCHEMA_FILLED | generated
    assert not set(columns) - classified, f"say who fills these columns: {sorted(set(columns) - classified)}"
    assert not classified - set(columns), f"no such columns: {sorted(classified - set(columns))}"
    drifted = {key: (columns[key], limit) for key, limit in USER_FILLED.items() if columns[key] != limit}
    assert not drifted, f"(column length, validation limit) differ: {drifted}"


# --- the API: callers and routes -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tenant(in_process: str) -> tuple[str, Api, MasterData]:
    tenant_id, owner = make_tenant(in_process, prefix="limits")
    return tenant_id, owner, seed_master_data(owner, skus=("A",))


def _caller(route: Route, in_process: str, owner: Api) -> Api:
    return operator(in_process) if route.permission == Permission.TENANTS_MANAGE else owner


def json_routes() -> list[Route]:
    """Every route that reads a JSON body."""
    return [route for route in ROUTES if route.reads_body]


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_settings(), "max_json_bytes", 1024)
    monkeypatch.setattr(get_settings(), "max_upload_bytes", 4096)


def _refusal(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["request_id"] == response.headers["x-request-id"]
    return error


@pytest.mark.usefixtures("small_limits")
@pytest.mark.parametrize("route", json_routes(), ids=lambda r: f"{r.method} {r.path}")
def test_a_body_past_the_limit_is_413_declared_or_streamed(
    route: Route, in_process: str, tenant: tuple[str, Api, MasterData]
) -> None:
    api = _caller(route, in_process, tenant[1])
    body = b'{"name": "' + b"x" * 2000 + b'"}'
    declared = api.http.request(route.method, route.url(), content=body, headers={"Content-Type": "application/json"})
    streamed = api.http.request(
        route.method,
        route.url(),
        content=iter([body[:1000], body[1000:]]),
        headers={"Content-Type": "application/json"},
    )
    for response in (declared, streamed):
        error = _refusal(response, 413)
        assert (error["code"], error["reason"]) == ("VALIDATION_FAILED", "BODY_TOO_LARGE"), error


@pytest.mark.usefixtures("small_limits")
def test_an_upload_past_the_limit_is_413_declared_or_streamed(tenant: tuple[str, Api, MasterData]) -> None:
    tenant_id, owner, _ = tenant
    before = query("SELECT count(*) FROM jobs", tenant_id=tenant_id)[0][0]
    big = b"sale_id,sku,sale_date,quantity_sold\n" + b"S1,A,2024-01-01,1\n" * 400
    declared = owner.post("/runs", files={"sales_file": ("s.csv", big, "text/csv")})
    assert _refusal(declared, 413)["reason"] == "BODY_TOO_LARGE"
    boundary = "hostilelimit"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="sales_file"; filename="s.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n").encode()  # fmt: skip
    parts = [head, big, f"\r\n--{boundary}--\r\n".encode()]
    streamed = owner.post(
        "/runs", content=iter(parts), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert _refusal(streamed, 413)["reason"] == "FILE_TOO_LARGE"
    assert query("SELECT count(*) FROM jobs", tenant_id=tenant_id)[0][0] == before


# --- text fields: the longest accepted, one more refused with its field ---------------------------------------


def _md(tenant: tuple[str, Api, MasterData]) -> MasterData:
    return tenant[2]


TextCase = tuple[str, str, Callable[[MasterData, str], dict[str, Any]], int, int | None]
TEXT_CASES: dict[str, TextCase] = {
    # name: (path, field, body for a value, limit, row of the error)
    "category name": ("/categories", "name", lambda md, v: {"name": v}, inventory.NAME_MAX, None),
    "hub name": ("/hubs", "name", lambda md, v: {"name": v}, inventory.NAME_MAX, None),
    "bin name": ("/bins", "name", lambda md, v: {"hub_id": md.hub_id, "name": v}, inventory.NAME_MAX, None),
    "bin hub_id": ("/bins", "hub_id", lambda md, v: {"hub_id": v, "name": "b"}, inventory.ID_MAX, None),
    "vendor name": ("/vendors", "name", lambda md, v: {"name": v}, inventory.NAME_MAX, None),
    "item sku": ("/items", "sku", lambda md, v: {"sku": v, "name": "n", "category_id": md.category_id},
                 inventory.SKU_MAX, None),
    "item name": ("/items", "name", lambda md, v: {"sku": "S-" + v[:20], "name": v, "category_id": md.category_id},
                  inventory.NAME_MAX, None),
    "receipt sku": ("/receipts", "sku", lambda md, v: {"vendor_id": md.vendor_id, "received_at": "2024-01-01T00:00:00Z",
                    "lines": [{"sku": v, "bin_id": md.bin_id, "quantity": 1, "unit_cost": 1}]}, inventory.SKU_MAX, 1),
    "receipt lot_id": ("/receipts", "lot_id", lambda md, v: {"vendor_id": md.vendor_id,
                       "received_at": "2024-01-01T00:00:00Z", "lines": [{"sku": "A", "bin_id": md.bin_id,
                       "quantity": 1, "unit_cost": 1, "lot_id": v}]}, inventory.LOT_ID_MAX, 1),
    "count sku": ("/counts", "sku", lambda md, v: {"bin_id": md.bin_id, "counted_at": "2024-01-01T00:00:00Z",
                  "lines": [{"sku": v, "counted_quantity": 1}]}, inventory.SKU_MAX, 1),
    "key name": ("/keys", "name", lambda md, v: {"role": "viewer", "name": v}, 200, None),
    "integration name": ("/integrations", "name", lambda md, v: {"name": v, "url": "http://127.0.0.1:9/h",
                         "events": ["receipt.posted"]}, 200, None),
    "export sku filter": ("/exports", "sku", lambda md, v: {"report": "valuation", "params": {"sku": v}}, SKU_MAX,
                          None),
}  # fmt: skip


def _length_refusal(response: Any, field: str, row: int | None) -> None:
    error = _refusal(response, 422)
    assert error["code"] == "VALIDATION_FAILED", error
    named = [d for d in error["details"] if d.get("field", "").split(".")[-1] == field]
    assert named, f"no detail names {field}: {error}"
    assert row is None or named[0].get("row") == row, error


@pytest.mark.parametrize("name", sorted(TEXT_CASES))
def test_each_text_field_takes_its_limit_and_refuses_one_more(name: str, tenant: tuple[str, Api, MasterData]) -> None:
    path, field, body, limit, row = TEXT_CASES[name]
    _, owner, md = tenant
    longest = owner.post(path, json=body(md, "v" * limit))
    if longest.status_code >= 400:  # refused for another reason (an id that does not exist), never the length
        assert not any(d.get("field", "").endswith(field) and "at most" in d.get("message", "")
                       for d in longest.json()["error"]["details"]), longest.text  # fmt: skip
    _length_refusal(owner.post(path, json=body(md, "v" * (limit + 1))), field, row)


def test_tenant_name_and_id_limits(in_process: str) -> None:
    op = operator(in_process)
    body = {"tenant_id": unique_tenant("lim"), "plan": "free", "role_model": "simple"}
    assert op.post("/tenants", json={**body, "name": "n" * 200}).status_code == 201
    _length_refusal(op.post("/tenants", json={**body, "tenant_id": unique_tenant("lim2"), "name": "n" * 201}),
                    "name", None)  # fmt: skip
    too_long_id = op.post("/tenants", json={**body, "tenant_id": "t" * (inventory.TENANT_ID_MAX + 1), "name": "n"})
    assert _refusal(too_long_id, 422)["code"] == "VALIDATION_FAILED"


def test_an_idempotency_key_past_its_column_is_422(tenant: tuple[str, Api, MasterData]) -> None:
    _, owner, md = tenant
    # unit_cost: the count must not depend on an earlier test of the module having received SKU A
    line = {"sku": "A", "counted_quantity": 1, "unit_cost": "1.00"}
    body = {"bin_id": md.bin_id, "counted_at": "2024-01-01T00:00:00Z", "lines": [line]}
    response = owner.post("/counts", json=body, headers={"Idempotency-Key": "k" * 201})
    error = _refusal(response, 422)
    assert any(d["field"] == "Idempotency-Key" for d in error["details"]), error
    second = owner.post("/counts", json=body, headers={"Idempotency-Key": "k" * 200})
    assert second.status_code == 202, second.text


# --- a run's rows under the plan -----------------------------------------------------------------------------

FREE_ROWS = 10_000


def _free_tenant(in_process: str) -> tuple[str, Api]:
    tenant_id, owner = make_tenant(in_process, plan="free", prefix="rows")
    seed_master_data(owner, skus=("A",))
    return tenant_id, owner


def test_a_json_run_past_the_plans_rows_is_402_at_intake(in_process: str) -> None:
    tenant_id, owner = _free_tenant(in_process)
    sale = {"sku": "A", "sale_date": "2024-01-02", "quantity_sold": 1}
    lots = [{"lot_id": "L1", "sku": "A", "received_date": "2024-01-01", "original_quantity": 10**6,
             "remaining_quantity": 10**6, "unit_price": 1}]  # fmt: skip
    at_limit = [{"sale_id": f"S{i}", **sale} for i in range(FREE_ROWS - 1)]
    assert owner.post("/runs", json={"sales_data": at_limit, "lots_data": lots}).status_code == 202
    over = owner.post("/runs", json={"sales_data": [*at_limit, {"sale_id": "S-last", **sale}], "lots_data": lots})
    error = _refusal(over, 402)
    assert error["code"] == "PLAN_LIMIT_EXCEEDED"
    assert error["details"][0] | {"message": ""} == {"limit": "rows_per_run", "used": FREE_ROWS + 1,
                                                     "max": FREE_ROWS, "message": ""}  # fmt: skip
    assert query("SELECT count(*) FROM runs", tenant_id=tenant_id)[0][0] == 1


def test_a_csv_run_past_the_plans_rows_fails_in_the_job_and_writes_nothing(
    in_process: str, service_urls: dict[str, str]
) -> None:
    import redis

    from shared.jobs import runner
    from shared.registry import TABLE

    tenant_id, owner = _free_tenant(in_process)
    lots = b"lot_id,sku,received_date,original_quantity,remaining_quantity,unit_price\nL1,A,2024-01-01,99999,99999,1\n"
    sales = b"sale_id,sku,sale_date,quantity_sold\n" + b"".join(b"S%d,A,2024-01-02,1\n" % i for i in range(FREE_ROWS))
    accepted = owner.post("/runs", files={"sales_file": ("s.csv", sales), "lots_file": ("l.csv", lots)})
    assert accepted.status_code == 202, accepted.text
    client = redis.Redis.from_url(service_urls["redis_url"])
    runner.drain_tenant(tenant_id, worker="limits", redis_client=client, settings=get_settings(), kinds=TABLE)
    run = owner.get(f"/runs/{accepted.json()['run_id']}").json()
    assert run["status"] == "failed" and run["error"]["code"] == "PLAN_LIMIT_EXCEEDED", run
    assert run["error"]["details"][0]["used"] == FREE_ROWS + 1
    assert query("SELECT count(*) FROM ledger_events", tenant_id=tenant_id)[0][0] == 0
