"""An ASGI guard in front of the application: PostgreSQL text cannot hold NUL characters, so a request that
carries one (in the path, the query or a JSON body) is refused with 422 before it reaches any handler."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send


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
        headers = dict(scope.get("headers", []))
        if b"json" not in headers.get(b"content-type", b""):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        body = bytearray()
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if b"\\u0000" in body or b"\x00" in body:
            await _refuse(scope, send)
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


async def _refuse(scope: Scope, send: Send) -> None:
    body = _envelope(scope)
    start: dict[str, Any] = {
        "type": "http.response.start",
        "status": 422,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})
