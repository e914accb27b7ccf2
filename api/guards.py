"""An ASGI guard in front of the application: PostgreSQL text cannot hold NUL characters, so a request whose
path or query carries one is refused with 422 before it reaches any handler. (A JSON body with one is refused
by the body parser, `api.deps.parse_json`, without buffering every body twice.)"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send


def _envelope(scope: Scope) -> bytes:
    return json.dumps({
        "error": {
            "code": "VALIDATION_FAILED",
            "reason": "BAD_REQUEST",
            "message": "the request contains a NUL character, which no field may hold",
            "details": [],
            "request_id": scope.get("state", {}).get("request_id"),
        }
    }).encode()  # fmt: skip


class RejectNul:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope["path"].encode()
        if b"\x00" in unquote_to_bytes(raw_path) or b"\x00" in unquote_to_bytes(scope.get("query_string", b"")):
            await _refuse(scope, send)
            return
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, send: Send) -> None:
    body = _envelope(scope)
    start: dict[str, Any] = {
        "type": "http.response.start",
        "status": 422,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})
