"""Every paginated route, read from the schema, given cursors that cannot be keys: 2^63 and past it, negative,
non-digit, over-long, control characters. A list keyed by a number answers 422 BAD_CURSOR past its column's
largest value (never a database error: a cursor at or past 2^63 once answered 503, and one past 2^31 on an
integer column too); a list keyed by text answers 200 for printable text (it is a
position in byte order) and 422 for the rest."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import Api, make_tenant, seed_master_data

NUMBERS = ["9223372036854775808", str(2**64), "1" + "0" * 30, "9223372036854775807" + "0"]
NOT_KEYS = ["-1", "1e3", "0x10", "\u0661\u0662", "x" * 201, "a\tb"]
# Lists whose key is a number (the three, found by the fuzzer): 2^63 and past it must be 422.
NUMERIC = {"/api/v1/jobs", "/api/v1/runs/{run_id}/validation-errors", "/api/v1/runs/{run_id}/allocations",
           "/api/v1/audit", "/api/v1/ledger", "/api/v1/integrations/{integration_id}/outbox"}  # fmt: skip


def paginated() -> list[str]:
    from api.main import app

    return sorted(
        path
        for path, operations in app.openapi()["paths"].items()
        if any(p["name"] == "cursor" for p in operations.get("get", {}).get("parameters", []))
    )


@pytest.fixture(scope="module")
def tenant(in_process: str) -> tuple[Api, dict[str, str]]:
    _, owner = make_tenant(in_process, prefix="cursor")
    seed_master_data(owner)
    run = owner.post("/runs", json={"sales_data": [], "lots_data": []}).json()
    integration = owner.post(
        "/integrations", json={"name": "erp", "url": "http://127.0.0.1:9/h", "events": ["receipt.posted"]}
    ).json()
    return owner, {"run_id": run["run_id"], "integration_id": integration["id"]}


def _get(api: Api, path: str, ids: dict[str, str], cursor: str) -> Any:
    url = path.removeprefix("/api/v1").format(**ids)
    return api.get(url, params={"cursor": cursor})


def test_the_walk_finds_every_paginated_route() -> None:
    assert len(paginated()) >= 17 and set(paginated()) >= NUMERIC


@pytest.mark.parametrize("path", paginated())
def test_a_cursor_that_cannot_be_a_key_is_422_never_a_server_error(
    path: str, tenant: tuple[Api, dict[str, str]]
) -> None:
    api, ids = tenant
    for cursor in NUMBERS + NOT_KEYS:
        response = _get(api, path, ids, cursor)
        assert response.status_code in (200, 422), (path, cursor, response.text)
        if response.status_code == 422:
            error = response.json()["error"]
            assert error["code"] == "VALIDATION_FAILED" and error["reason"] in ("BAD_CURSOR", "BAD_REQUEST"), error
            assert any(d.get("field") == "cursor" for d in error["details"]), error
        elif path in NUMERIC or cursor in ("x" * 201, "a\tb"):
            pytest.fail(f"{path} took cursor {cursor[:30]!r}: {response.text[:200]}")
    if path in NUMERIC:
        assert _get(api, path, ids, "2147483647").status_code == 200, path  # the largest integer key is a cursor
        assert _get(api, path, ids, "9223372036854775807").status_code in (200, 422), path  # 422 past the column
        for cursor in NUMBERS:
            assert _get(api, path, ids, cursor).json()["error"]["reason"] == "BAD_CURSOR", (path, cursor)
