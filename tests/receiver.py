"""A real webhook receiver for tests: an HTTP server on 127.0.0.1 in a thread of the test process. It checks
every delivery's signatures (X-Asora-Signature by hand, the Standard Webhooks headers with the
`standardwebhooks` package, against every secret it was told about), records what arrived in order, and can
be told to fail or stall on a given delivery."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Arrival:
    event_id: str
    type: str
    payload: dict[str, Any]
    headers: dict[str, str]
    asora_valid_with: list[str]  # which of the known secrets verified X-Asora-Signature
    standard_valid_with: list[str]  # ... and the Standard Webhooks signature
    answered: int


@dataclass
class Receiver:
    """`answer(n)` decides the status of the n-th delivery (1-based); `before_answer(n)` runs before it is
    sent (a test may block there, e.g. to kill the worker while the request is in flight)."""

    secrets: list[str] = field(default_factory=list)
    answer: Callable[[int], int] = lambda _n: 200
    before_answer: Callable[[int], None] = lambda _n: None
    arrivals: list[Arrival] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = dict(self.headers.items())
                with receiver._lock:
                    n = len(receiver.arrivals) + 1
                    status = receiver.answer(n)
                    payload = json.loads(body)
                    receiver.arrivals.append(
                        Arrival(payload["event_id"], payload["type"], payload, headers,
                                _asora_valid(receiver.secrets, headers, body),
                                _standard_valid(receiver.secrets, headers, body), status)
                    )  # fmt: skip
                receiver.before_answer(n)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def event_ids(self) -> list[str]:
        with self._lock:
            return [a.event_id for a in self.arrivals]

    def wait_for(self, count: int, timeout: float = 30) -> list[Arrival]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.arrivals) >= count:
                    return list(self.arrivals)
            time.sleep(0.05)
        raise AssertionError(f"the receiver got {len(self.arrivals)} deliveries, expected {count}")


def _asora_valid(known: list[str], headers: dict[str, str], body: bytes) -> list[str]:
    timestamp = headers.get("X-Asora-Timestamp", "")
    given = set(headers.get("X-Asora-Signature", "").split(","))
    return [
        s for s in known
        if hmac.new(s.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest() in given
    ]  # fmt: skip


def _standard_valid(known: list[str], headers: dict[str, str], body: bytes) -> list[str]:
    valid = []
    for secret in known:
        try:
            Webhook(secret).verify(body, headers)
        except WebhookVerificationError:
            continue
        valid.append(secret)
    return valid
