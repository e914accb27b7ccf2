"""Input that breaks HTTP itself rather than a field: invalid UTF-8, a bad multipart boundary, a method a path
lacks, bodies nested past any parser, control characters in a header value. Each is answered in the contract's
envelope with a contract code; the parser refusals are checked with a raw socket against a real uvicorn."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from api.server import H11, HttpTools
from shared.auth import Permission
from shared.errors import STATUS_BY_CODE
from shared.stack import free_port
from tests.api.test_route_order import Route
from tests.hostile.test_limits import json_routes
from tests.support import Api, make_tenant, operator


@pytest.fixture(scope="module")
def owner(in_process: str) -> Api:
    return make_tenant(in_process, prefix="edges")[1]


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] in STATUS_BY_CODE and error["request_id"] == response.headers["x-request-id"]
    return error


def test_invalid_utf8_in_a_json_body_is_malformed_json(owner: Api) -> None:
    response = owner.post("/categories", content=b'{"name": "\xc3\x28"}', headers={"Content-Type": "application/json"})
    assert _error(response, 422)["reason"] == "MALFORMED_JSON"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data; boundary=", b"--\r\n"),
        ("multipart/form-data", b"--x\r\n\r\n--x--\r\n"),
        ("multipart/form-data; boundary=abc", b"--abc\r\nContent-Disposition: form-data\r\n\r\nno end"),
        ("multipart/form-data; boundary=abc", b"--abc\r\nContent-Disposition: form-data; name=\xff\r\n\r\nv\r\n--a"),
    ],
    ids=["empty boundary", "no boundary", "unterminated", "invalid utf-8 name"],
)
def test_a_bad_multipart_body_is_a_contract_refusal(owner: Api, content_type: str, body: bytes) -> None:
    response = owner.post("/runs", content=body, headers={"Content-Type": content_type})
    error = _error(response, 422)
    assert error["code"] == "VALIDATION_FAILED" and error["reason"] in ("BAD_MULTIPART", "BAD_CSV"), error


def test_invalid_utf8_in_the_query_and_path_is_a_contract_refusal(owner: Api) -> None:
    for url in ("/runs?status=%ff%fe", "/runs/%ff%fe", "/items?cursor=%c3%28", "/ledger?sku=A%ed%a0%80"):
        error = _error(owner.get(url), 422)
        assert (error["code"], error["reason"]) == ("VALIDATION_FAILED", "BAD_REQUEST"), (url, error)


def test_a_method_the_path_lacks_is_405_in_the_envelope(owner: Api) -> None:
    response = owner.put("/runs")
    error = _error(response, 405)
    assert (error["code"], error["reason"]) == ("NOT_FOUND", "METHOD_NOT_ALLOWED")
    assert "POST" in response.headers["allow"]


DEEP = 200_000


@pytest.mark.parametrize("route", json_routes(), ids=lambda r: f"{r.method} {r.path}")
def test_json_nested_past_any_parser_is_malformed_json_on_every_json_route(
    owner: Api, in_process: str, route: Route
) -> None:
    api = operator(in_process) if route.permission == Permission.TENANTS_MANAGE else owner
    for body in (b"[" * DEEP + b"]" * DEEP, b'{"a":' * DEEP + b"1" + b"}" * DEEP):
        response = api.http.request(
            route.method, route.url(), content=body, headers={"Content-Type": "application/json"}
        )
        assert _error(response, 422)["reason"] == "MALFORMED_JSON", (route, response.text)


# --- the HTTP parser, before the application: a real uvicorn and a raw socket -------------------------------

HOSTILE_HEADS = {
    "control character in a header value": b"GET /health HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n",
    "NUL in a header value": b"GET /health HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n",
    "space in a header name": b"GET /health HTTP/1.1\r\nHost: x\r\nX Bad: 1\r\n\r\n",
    "garbage request line": b"\x16\x03\x01 nonsense\r\n\r\n",
    "bad chunk size": b"POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
}


def _raw(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """One response read off a raw socket: up to its Content-Length, or to the server's close when it has none
    (a request the server keeps alive would otherwise be read until its keep-alive timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while (chunk := sock.recv(65536)) and not _complete(data := data + chunk):
            pass
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def _complete(data: bytes) -> bool:
    head, separator, body = data.partition(b"\r\n\r\n")
    lengths = [line.partition(b":")[2] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    return bool(separator and lengths) and len(body) >= int(lengths[0])


def _assert_refused_in_envelope(port: int, request: bytes) -> None:
    status, headers, body = _raw(port, request)
    assert status == 422 and headers["content-type"] == "application/json", (status, headers, body)
    error = json.loads(body)["error"]
    assert (error["code"], error["reason"]) == ("VALIDATION_FAILED", "BAD_REQUEST")
    assert error["request_id"] == headers["x-request-id"]


@pytest.fixture(scope="module", params=[HttpTools, H11], ids=["httptools", "h11"])
def served(request: pytest.FixtureRequest, in_process: str) -> Iterator[tuple[int, type]]:
    """api.main:app under a real uvicorn (in a thread) with one of Asora's protocol classes."""
    del in_process  # the database the app reads, and the operator key
    from api.main import app

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=request.param, lifespan="off", log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield port, request.param
    server.should_exit = True
    thread.join(timeout=30)


# h11 lets a control character other than NUL through to the application (which answers it as any header).
H11_ACCEPTS = {"control character in a header value"}


@pytest.mark.parametrize("name", sorted(HOSTILE_HEADS))
def test_the_http_parser_refuses_in_the_envelope(served: tuple[int, type], name: str) -> None:
    port, protocol = served
    if protocol is H11 and name in H11_ACCEPTS:
        status, _, body = _raw(port, HOSTILE_HEADS[name])
        assert status in (200, 503) and "status" in json.loads(body), (status, body)  # the health check answered
        return
    _assert_refused_in_envelope(port, HOSTILE_HEADS[name])


def test_a_well_formed_request_still_reaches_the_app(served: tuple[int, type]) -> None:
    status, _, body = _raw(served[0], b"GET /api/v1/runs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 401 and json.loads(body)["error"]["code"] == "UNAUTHENTICATED", (status, body)


def test_the_stack_serves_with_the_envelope_protocol(shared_stack: str) -> None:
    """The stack's own uvicorn command (shared/stack.py, as `asora up` and the manifests run it)."""
    port = int(shared_stack.rsplit(":", 1)[1])
    _assert_refused_in_envelope(port, HOSTILE_HEADS["control character in a header value"])
