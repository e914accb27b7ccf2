"""An ASGI guard in front of the application: a request whose path or query, percent-decoded, is not UTF-8 or
carries a NUL character (PostgreSQL text cannot hold one) is refused with 422 before it reaches any handler.
Starlette would decode invalid UTF-8 with replacement characters, so a mangled id or cursor would be looked up
as if it had been sent. (A JSON body is checked by its parser, `api.deps.parse_json`, without buffering every
body twice.)"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send


def _envelope(scope: Scope, message: str) -> bytes:
    return json.dumps({
        "error": {
            "code": "VALIDATION_FAILED",
            "reason": "BAD_REQUEST",
            "message": message,
            "details": [],
            "request_id": scope.get("state", {}).get("request_id"),
        }
    }).encode()  # fmt: skip


def _problem(raw: bytes) -> str | None:
    decoded = unquote_to_bytes(raw)
    if b"\x00" in decoded:
        return "the request contains a NUL character, which no field may hold"
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError:
        return "the request's path or query is not valid UTF-8 once percent-decoded"
    return None


class RejectBadText:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope["path"].encode()
        problem = _problem(raw_path) or _problem(scope.get("query_string", b""))
        if problem is not None:
            await _refuse(scope, send, problem)
            return
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, send: Send, message: str) -> None:
    body = _envelope(scope, message)
    start: dict[str, Any] = {
        "type": "http.response.start",
        "status": 422,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})
