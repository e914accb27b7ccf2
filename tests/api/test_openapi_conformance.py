"""Schemathesis over the whole schema, against the API served in this process: for generated requests, valid
and invalid, every answer's status code, content type, headers and body conform to what the schema declares,
and none is a 5xx. Two callers walk every operation: a tenant owner (valid and invalid data, boundary values
included), and the operator acting on that tenant (valid data).

The tenant is stocked first (`tests/hostile/stocked.py`), so reports, the ledger and a run's results answer
with rows, and about half of the generated ids are ones that exist. Generation is deterministic and bounded.
`tests/hostile/walk.py` is the longer walk, with two tenants and the operator."""

from __future__ import annotations

import os
from typing import Any, cast

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import ASGIClient
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.main import app
from tests.conftest import OPERATOR_KEY
from tests.hostile.stocked import Tenant, stock_tenant
from tests.support import Api, operator
from tests.tier import FAST

CONFORMANCE = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
SEED = 20261201
# Examples per operation and generation mode, fewer in `make test-fast` (tests/tier.py); raise it for a deeper
# search (ASORA_SCHEMATHESIS_EXAMPLES=50).
EXAMPLES = int(os.environ.get("ASORA_SCHEMATHESIS_EXAMPLES", "3" if FAST else "5"))
DOCUMENT = app.openapi()


def _config(mode: str, examples: int, *, coverage: bool) -> schemathesis.Config:
    generation = {"mode": mode, "max-examples": examples, "deterministic": True, "with-security-parameters": False}
    phases = {"stateful": {"enabled": False}, "coverage": {"enabled": coverage}}
    return schemathesis.Config.from_dict({"seed": SEED, "generation": generation, "phases": phases})


# The owner: valid and invalid data, with the coverage phase's boundary values (in `make test`; the fast tier
# draws generated cases only).
OWNER_SCHEMA = schemathesis.openapi.from_dict(DOCUMENT, config=_config("all", EXAMPLES, coverage=not FAST))
# The operator: valid data only (its refusals are the permission tests' subject).
OPERATOR_SCHEMA = schemathesis.openapi.from_dict(DOCUMENT, config=_config("positive", EXAMPLES - 1, coverage=False))


@pytest.fixture(scope="module")
def tenant(in_process: str) -> Tenant:
    return stock_tenant(in_process, "conform")


def _exercise(case: Any, tenant: Tenant, key: str, x_tenant_id: str | None) -> None:
    if case.path_parameters:
        tenant.adopt_path(case.path, case.path_parameters)
    if isinstance(case.body, dict | list):
        case.body = tenant.adopt_body(case.body)
    if case.headers:
        case.headers.pop("X-Tenant-ID", None)  # the caller's own, below
    headers = {"Authorization": f"Bearer {key}"} | ({"X-Tenant-ID": x_tenant_id} if x_tenant_id else {})
    # /health answers 503 by design when a dependency is down (here: no worker runs); its body is still checked.
    checks = CONFORMANCE if case.path == "/health" else [not_a_server_error, *CONFORMANCE]
    case.call_and_validate(
        session=ASGIClient(cast(Any, app)), base_url="http://testserver", headers=headers, checks=checks
    )


@OWNER_SCHEMA.parametrize()
def test_owner_answers_conform(case: Any, tenant: Tenant) -> None:
    _exercise(case, tenant, tenant.owner_key, None)


@OPERATOR_SCHEMA.parametrize()
def test_operator_answers_conform(case: Any, tenant: Tenant) -> None:
    _exercise(case, tenant, OPERATOR_KEY, tenant.tenant_id)


def test_both_callers_exist(in_process: str, tenant: Tenant) -> None:
    """The keys the walks use are live: a walk answered only with 401s would prove nothing."""
    assert Api(in_process, tenant.owner_key).get("/runs").status_code == 200
    assert operator(in_process, tenant.tenant_id).get("/runs").status_code == 200
