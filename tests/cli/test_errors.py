"""How the CLI fails: the documented exit codes (1 refused or failed, 3 unreachable, 4 timed out), messages
that name the URL, and never a traceback, a Python dict or `None`. A stub HTTP server plays the API, so each
answer is exactly the one under test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from typer.testing import CliRunner

from shared.cli.errors import detail_line, error_lines, error_sentence
from shared.cli.main import app
from shared.config import get_settings
from shared.ports import free_port

runner = CliRunner()

# path -> (status, body): what the stub answers; a body that is not a dict is sent as plain text.
Routes = dict[str, tuple[int, Any]]


class Stub(BaseHTTPRequestHandler):
    routes: Routes = {}

    def _answer(self) -> None:
        missing = (404, {"error": {"code": "NOT_FOUND", "message": "no such route in the stub"}})
        status, body = self.routes.get(self.path.split("?")[0], missing)
        raw = json.dumps(body).encode() if isinstance(body, dict | list) else str(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if isinstance(body, dict | list) else "text/plain")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stub(monkeypatch) -> Iterator[Routes]:
    """A stub API on a free port, with ASORA_API_URL and ASORA_API_KEY pointing at it; set its routes."""
    routes: Routes = {}
    handler = type("Handler", (Stub,), {"routes": routes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("ASORA_API_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("ASORA_API_KEY", "asora_stub_key")
    get_settings.cache_clear()
    try:
        yield routes
    finally:
        get_settings.cache_clear()
        server.shutdown()
        server.server_close()


def invoke(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


def readable(result) -> None:
    """Nothing a user should not see: no traceback, no Python dict, no None."""
    text = result.stdout + result.stderr
    assert "Traceback" not in text
    assert "{'" not in text and "None" not in text


def test_an_api_refusal_exits_1_with_its_details_as_lines(stub):
    stub["/api/v1/runs"] = (
        422,
        {
            "error": {
                "code": "VALIDATION_FAILED",
                "reason": "BAD_REQUEST",
                "message": "the request is invalid",
                "details": [{"row": 3, "field": "quantity_sold", "message": "must be positive"}, {"limit": "items"}],
                "request_id": "req-1",
            }
        },
    )
    result = invoke("list-runs", "--tenant-id", "acme")
    assert result.exit_code == 1
    assert "422 VALIDATION_FAILED (BAD_REQUEST): the request is invalid" in result.stderr
    assert "row 3, field quantity_sold: must be positive" in result.stderr
    assert "limit items" in result.stderr
    assert "request id req-1" in result.stderr
    readable(result)


def test_an_answer_that_is_not_the_envelope_is_shown_as_text(stub):
    stub["/api/v1/runs"] = (500, "Internal Server Error")
    result = invoke("list-runs", "--tenant-id", "acme")
    assert result.exit_code == 1
    assert "answered 500: Internal Server Error" in result.stderr
    readable(result)


def test_503_means_a_dependency_is_down_exit_3(stub):
    stub["/api/v1/runs"] = (503, {"error": {"code": "UNAVAILABLE", "message": "the database is down"}})
    result = invoke("list-runs", "--tenant-id", "acme")
    assert result.exit_code == 3
    assert "UNAVAILABLE: the database is down" in result.stderr


def test_a_job_that_does_not_finish_in_time_exits_4(stub, tmp_path):
    stub["/api/v1/runs"] = (202, {"run_id": "run_1", "job_id": "job_1", "status": "queued"})
    stub["/api/v1/jobs/job_1"] = (200, {"job_id": "job_1", "status": "queued"})
    sales = tmp_path / "sales.csv"
    sales.write_text("sale_id,sku,sale_date,quantity_sold\nS1,A,2024-07-01,1\n")
    result = invoke("run", "--tenant-id", "acme", "--sales-file", str(sales), "--wait", "--timeout", "0.2")
    assert result.exit_code == 4
    assert "timed out after 0.2 s waiting for job job_1 (still queued)" in result.stderr
    assert result.stdout.strip() == "run_1"


def test_a_failed_rollback_shows_the_error_as_a_sentence(stub):
    stub["/api/v1/runs/run_1/rollback"] = (202, {"run_id": "run_1", "job_id": "job_2", "status": "queued"})
    error = {"code": "CONFLICT", "reason": "ROLLBACK_BLOCKED", "message": "later runs consumed its stock"}
    stub["/api/v1/jobs/job_2"] = (200, {"job_id": "job_2", "status": "failed", "error": error | {"details": []}})
    result = invoke("rollback", "run_1", "--confirm")
    assert result.exit_code == 1
    assert "the rollback failed: CONFLICT (ROLLBACK_BLOCKED): later runs consumed its stock" in result.stderr
    readable(result)


def test_an_unreachable_api_exits_3_and_names_the_url(monkeypatch):
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("ASORA_API_URL", url)
    monkeypatch.setenv("ASORA_API_KEY", "asora_any")
    get_settings.cache_clear()
    try:
        result = invoke("list-runs", "--tenant-id", "acme")
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 3
    assert f"cannot reach {url}/api/v1/runs" in result.stderr
    assert "asora up" in result.stderr
    readable(result)


def _asora(tmp_path, extra: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own, with every server configured (so nothing embedded starts) and a
    scratch data directory."""
    env = {
        **os.environ,
        "ASORA_DATA_DIR": str(tmp_path),
        "ASORA_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres",
        "ASORA_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        **extra,
    }
    return subprocess.run(
        [sys.executable, "-m", "shared.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_unreachable_database_exits_3_names_it_and_hides_the_password(tmp_path):
    url = f"postgresql+psycopg://asora:hunter2@127.0.0.1:{free_port()}/asora"
    result = _asora(tmp_path, {"ASORA_DATABASE_URL": url}, "tenants", "verify", "acme")
    assert result.returncode == 3, result.stderr
    assert f"cannot reach the database at postgresql+psycopg://asora:***@127.0.0.1:{url.rsplit(':', 1)[1]}" in (
        result.stderr
    )
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr


def test_an_invalid_setting_is_a_usage_error(tmp_path):
    result = _asora(tmp_path, {"ASORA_HEARTBEAT_SECONDS": "often"}, "tenants", "verify", "acme")
    assert result.returncode == 2
    assert "heartbeat_seconds" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unexpected_error_is_one_line_without_a_traceback(monkeypatch):
    from shared.cli import launch

    def broken() -> None:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(launch, "down", broken)
    result = invoke("down")
    assert result.exit_code == 1
    assert "unexpected error: RuntimeError: the disk is on fire" in result.stderr
    assert "ASORA_DEBUG=1" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("detail", "line"),
    [
        ({"row": 3, "field": "sku", "message": "unknown"}, "row 3, field sku: unknown"),
        ({"limit": "items", "used": 100, "max": 100}, "limit items, used 100, max 100"),
        ({"field": "role", "message": "owner, manager", "hint": None}, "field role: owner, manager"),
        ({"blocking_runs": ["run_a", "run_b"]}, "blocking_runs run_a, run_b"),
        ("a plain sentence", "a plain sentence"),
    ],
)
def test_details_read_as_lines(detail, line):
    assert detail_line(detail) == line


def test_errors_read_as_sentences():
    assert error_sentence({"code": "NOT_FOUND", "reason": None, "message": "run 'x' not found"}) == (
        "NOT_FOUND: run 'x' not found"
    )
    assert error_sentence({}) == "unknown error"
    many = {"details": [{"row": n, "message": "bad"} for n in range(1, 26)]}
    assert error_lines(many)[-1] == "... and 5 more"
