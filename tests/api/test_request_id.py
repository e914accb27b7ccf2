"""Every response carries `X-Request-ID` (the client's, when it is a plain token, else a new one); every error
envelope carries it as `error.request_id`; every request writes one JSON access-log line naming it, the
tenant, the route template, the method, the status and the duration. The API runs in process here."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from shared.logs import configure_logging, reset_logging
from tests.support import Api, make_tenant

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def owner(in_process: str) -> tuple[str, Api]:
    return make_tenant(in_process, prefix="rid")


@pytest.fixture
def access_log() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    configure_logging("api", "json", stream=buffer)
    try:
        yield buffer
    finally:
        reset_logging()


def access_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    parsed = [json.loads(line) for line in buffer.getvalue().splitlines()]
    return [line for line in parsed if line.get("logger") == "asora.access"]


def test_a_plain_request_id_is_echoed(in_process, owner):
    _, api = owner
    response = api.get("/runs", headers={"X-Request-ID": "client-req.42_a"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "client-req.42_a"


@pytest.mark.parametrize(
    "given",
    [None, "", "x" * 65, "has space", "semi;colon", "ünïcode", "new\\nline"],
    ids=["absent", "empty", "too-long", "space", "semicolon", "non-ascii", "backslash"],
)
def test_anything_else_is_replaced_by_a_new_id(in_process, owner, given):
    _, api = owner
    headers = {} if given is None else {"X-Request-ID": given}
    response = api.get("/runs", headers={k: v.encode() for k, v in headers.items()})
    assert GENERATED.fullmatch(response.headers["x-request-id"])


def test_each_request_gets_its_own_id(in_process, owner):
    _, api = owner
    ids = {api.get("/runs").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3


def test_a_401_envelope_names_the_request(in_process):
    anonymous = Api(in_process, None)
    response = anonymous.get("/runs", headers={"X-Request-ID": "req-401"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHENTICATED"
    assert response.json()["error"]["request_id"] == "req-401" == response.headers["x-request-id"]


def test_a_422_envelope_names_the_request(in_process, owner):
    _, api = owner
    bad_query = api.get("/runs", params={"limit": "many"})
    bad_body = api.post("/categories", content=b"{not json", headers={"Content-Type": "application/json"})
    for response in (bad_query, bad_body):
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "VALIDATION_FAILED"
        assert error["request_id"] == response.headers["x-request-id"]
        assert GENERATED.fullmatch(error["request_id"])


def test_a_404_for_no_route_names_the_request_too(in_process):
    response = Api(in_process, None).get("/no-such-thing", headers={"X-Request-ID": "req-404"})
    assert response.status_code == 404
    assert response.json()["error"]["request_id"] == "req-404"


def test_each_request_writes_one_access_line(in_process, owner, access_log):
    tenant_id, api = owner
    missing = "run_doesnotexist123"
    response = api.get(f"/runs/{missing}", headers={"X-Request-ID": "req-access-1"})
    assert response.status_code == 404
    Api(in_process, None).get("/runs", headers={"X-Request-ID": "req-access-2"})

    first, second = access_lines(access_log)
    assert first["event"] == "request"
    assert first["request_id"] == "req-access-1"
    assert first["tenant_id"] == tenant_id
    assert first["route"] == "/runs/{run_id}"  # the template (as the metrics label it): no id from the path
    assert first["method"] == "GET"
    assert first["status"] == 404
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] >= 0
    assert first["service"] == "api" and first["level"] == "info"
    assert missing not in json.dumps(first)

    assert second["request_id"] == "req-access-2"
    assert second["status"] == 401
    assert second["tenant_id"] is None  # no key, no tenant
    assert second["route"] == "/runs"


def test_no_header_or_key_reaches_the_access_log(in_process, owner, access_log):
    _, api = owner
    api.post("/categories", json={"name": "secret-marker-category"}, headers={"X-Request-ID": "req-body"})
    text = access_log.getvalue()  # every line: the API's, and the test client's own
    assert api.key not in text
    assert "secret-marker-category" not in text  # bodies are never logged
    (line,) = access_lines(access_log)
    assert line["request_id"] == "req-body" and line["status"] == 201


def test_a_line_written_inside_a_route_carries_the_request_and_its_tenant(in_process, owner, access_log, monkeypatch):
    """Routes run in the threadpool: the bound context goes with them."""
    import logging

    from shared.runs import service as runs

    tenant_id, api = owner
    original = runs.list_runs

    def list_runs(*args: Any, **kwargs: Any) -> Any:
        logging.getLogger("asora.test").info("listing runs")
        return original(*args, **kwargs)

    monkeypatch.setattr(runs, "list_runs", list_runs)
    assert api.get("/runs", headers={"X-Request-ID": "req-inside"}).status_code == 200
    (inside,) = [json.loads(line) for line in access_log.getvalue().splitlines() if "listing runs" in line]
    assert (inside["request_id"], inside["tenant_id"]) == ("req-inside", tenant_id)


def test_an_unexpected_error_answers_with_the_request_id_too(in_process, owner, access_log, monkeypatch):
    """A 500 is answered from outside every middleware (Starlette's ServerErrorMiddleware): the id is still
    in its header and its envelope, and the access line records the 500 and the exception, never the key."""
    from shared.runs import service as runs

    tenant_id, api = owner

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(f"something broke near {api.key}")

    monkeypatch.setattr(runs, "list_runs", broken)
    response = api.get("/runs", headers={"X-Request-ID": "req-500"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "req-500"
    assert response.json()["error"] == {
        "code": "INTERNAL", "reason": None, "message": "an internal error occurred; nothing was accepted",
        "details": [], "request_id": "req-500",
    }  # fmt: skip
    (line,) = access_lines(access_log)
    assert (line["request_id"], line["status"], line["tenant_id"]) == ("req-500", 500, tenant_id)
    logged = [json.loads(text) for text in access_log.getvalue().splitlines()]
    (error,) = [entry for entry in logged if entry["event"] == "unhandled error"]
    assert error["request_id"] == "req-500" and "RuntimeError" in error["exception"]
    assert api.key not in access_log.getvalue()
