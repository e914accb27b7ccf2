"""Uvicorn's HTTP protocols with one change: a request the HTTP parser refuses before the application sees it
(a control character in a header value, a malformed request line or header, a bad chunk) is answered with the
contract's envelope, `422 VALIDATION_FAILED / BAD_REQUEST`, instead of uvicorn's plain-text 400.

Every process that serves the API names one of these: `uvicorn api.main:app --http api.server:HttpTools`
(`shared/stack.py`, `deploy/`). `HttpTools` is uvicorn's default parser (httptools); `H11` the pure-Python one.
What still answers outside the envelope is what never reaches a parser: a connection closed or timed out
before a full request head, and TLS or HTTP/2 bytes sent to the plain HTTP/1.1 port (docs/api.md)."""

from __future__ import annotations

import json
import uuid

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MESSAGE = "the request is not valid HTTP/1.1 (a malformed request line or header, e.g. a control character)"


def refusal() -> bytes:
    """The whole response, head and body: the connection is closed after it, as uvicorn does."""
    request_id = uuid.uuid4().hex
    body = json.dumps({
        "error": {"code": "VALIDATION_FAILED", "reason": "BAD_REQUEST", "message": MESSAGE,
                  "details": [{"field": "request", "message": "rejected by the HTTP parser"}],
                  "request_id": request_id},
    }).encode()  # fmt: skip
    head = (
        "HTTP/1.1 422 Unprocessable Content\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        f"x-request-id: {request_id}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class HttpTools(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        del msg  # uvicorn's plain text; the envelope says the same
        self.transport.write(refusal())
        self.transport.close()


class H11(H11Protocol):
    def send_400_response(self, msg: str) -> None:
        del msg
        self.transport.write(refusal())
        self.transport.close()
