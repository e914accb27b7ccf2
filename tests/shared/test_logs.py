"""shared/logs.py: one configuration for every process; JSON lines or a console format; stdlib call sites
structured; bound context on every line; secrets redacted wherever they sit."""

from __future__ import annotations

import io
import json
import logging
import secrets
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from shared.config import Settings
from shared.integrations.secrets import generate_secret
from shared.logs import REDACTED, configure_logging, reset_logging
from shared.stack import Stack
from shared.tenants.service import KEY_PREFIX


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    configure_logging("test", "json", stream=buffer)
    try:
        yield buffer
    finally:
        reset_logging()


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)  # the form shared/tenants/service.py mints


def test_a_stdlib_call_site_writes_one_json_object_with_the_bound_context(captured):
    with structlog.contextvars.bound_contextvars(request_id="req-1", tenant_id="acme"):
        logging.getLogger("asora.somewhere").warning("published %d job(s)", 3, extra={"stream": "ledger"})
    (line,) = lines(captured)
    assert line["event"] == "published 3 job(s)"
    assert line["level"] == "warning"
    assert line["logger"] == "asora.somewhere"
    assert line["service"] == "test"
    assert line["request_id"] == "req-1" and line["tenant_id"] == "acme"
    assert line["stream"] == "ledger"
    assert line["timestamp"].endswith("Z")


def test_context_is_not_carried_past_its_binding(captured):
    with structlog.contextvars.bound_contextvars(job_id="job_1"):
        structlog.get_logger("asora.jobs").info("inside")
    structlog.get_logger("asora.jobs").info("outside")
    inside, outside = lines(captured)
    assert inside["job_id"] == "job_1"
    assert "job_id" not in outside


def test_an_exception_is_one_line_with_its_traceback(captured):
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("asora.worker").exception("job crashed")
    (line,) = lines(captured)
    assert line["level"] == "error"
    assert "RuntimeError: boom" in line["exception"]


@pytest.mark.parametrize(
    "secret",
    [api_key(), generate_secret(), "asora_test_operator_" + secrets.token_hex(16)],
    ids=["api-key", "webhook-secret", "test-operator-key"],
)
def test_a_credential_never_reaches_a_line_whatever_carries_it(captured, secret):
    log = logging.getLogger("asora.api")
    log.info("looked up %s", secret)
    log.info("header", extra={"headers": {"Authorization": f"Bearer {secret}", "accept": "*/*"}})
    structlog.get_logger("asora.api").info("nested", payload={"rows": [{"note": f"key={secret}"}]}, plain=secret)
    try:
        raise ValueError(f"bad key {secret}")
    except ValueError:
        log.exception("failed")
    text = captured.getvalue()
    assert secret not in text
    parsed = lines(captured)
    assert parsed[0]["event"] == f"looked up {REDACTED}"
    assert parsed[1]["headers"] == {"Authorization": REDACTED, "accept": "*/*"}
    assert parsed[2]["payload"] == {"rows": [{"note": f"key={REDACTED}"}]}


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("delivering to https://hooks.example/in?token=s3cr3t-value&v=1", "https://hooks.example/in?token="),
        ("broker postgresql://asora:s3cr3t-value@db.internal/asora", "postgresql://asora:"),
        ("redis://:s3cr3t-value@127.0.0.1:6379/0 is down", "@127.0.0.1:6379/0 is down"),
        ("header Authorization: Basic s3cr3t-value", "Authorization: Basic "),
    ],
)
def test_credentials_inside_urls_and_headers_are_cut_out(captured, text, kept):
    logging.getLogger("asora.worker").info(text)
    event = lines(captured)[0]["event"]
    assert "s3cr3t-value" not in event
    assert kept in event and REDACTED in event


def test_plain_prose_stays_as_it_was(captured):
    text = "a basic check of http://127.0.0.1:8000/health for the bearer of key_01abc"
    logging.getLogger("asora.api").info(text)
    assert lines(captured)[0]["event"] == text


@pytest.mark.parametrize("key", ["authorization", "secret", "password", "token", "api_key", "X-Api-Key", "key"])
def test_values_under_secret_looking_keys_are_redacted(captured, key):
    structlog.get_logger().info("event", **{key: "hunter2-plain-text"})
    assert lines(captured)[0][key] == REDACTED
    assert "hunter2" not in captured.getvalue()


def test_identifiers_that_merely_start_like_a_key_stay_readable(captured):
    structlog.get_logger().info("roles", role="asora_app", metric="asora_intake_counter_hold_seconds", key_id="k1")
    line = lines(captured)[0]
    assert line["role"] == "asora_app"
    assert line["metric"] == "asora_intake_counter_hold_seconds"
    assert line["key_id"] == "k1"


def test_the_console_format_is_for_people():
    buffer = io.StringIO()
    configure_logging("test", "console", stream=buffer)
    try:
        with structlog.contextvars.bound_contextvars(request_id="req-9"):
            logging.getLogger("asora.relay").info("relay started")
    finally:
        reset_logging()
    text = buffer.getvalue()
    assert "relay started" in text and "request_id=req-9" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_background_writing_keeps_the_callers_context_and_flushes_on_reset():
    buffer = io.StringIO()
    configure_logging("api", "json", stream=buffer, background=True)
    try:
        with structlog.contextvars.bound_contextvars(request_id="req-bg"):
            for n in range(50):
                logging.getLogger("asora.api").info("line %d", n)
    finally:
        reset_logging()  # stops the writer thread after it wrote what was queued
    written = lines(buffer)
    assert [line["event"] for line in written] == [f"line {n}" for n in range(50)]
    assert {line["request_id"] for line in written} == {"req-bg"}


def test_reconfiguring_replaces_only_our_own_handler(captured):
    other = logging.NullHandler()
    logging.getLogger().addHandler(other)
    try:
        configure_logging("test", "json", stream=captured)
        configure_logging("test", "json", stream=captured)
        ours = [h for h in logging.getLogger().handlers if getattr(h, "_asora_handler", False)]
        assert len(ours) == 1
        assert other in logging.getLogger().handlers
    finally:
        logging.getLogger().removeHandler(other)


@pytest.mark.parametrize(
    ("environment", "given", "expected"),
    [
        ("development", None, "console"),
        ("test", None, "json"),
        ("production", None, "json"),
        ("development", "json", "json"),
        ("test", "console", "console"),
    ],
)
def test_the_format_follows_the_environment_unless_set(monkeypatch, environment, given, expected):
    monkeypatch.setenv("ASORA_ENVIRONMENT", environment)
    monkeypatch.setenv("ASORA_SECRET_KEY", "x" * 32)
    if given is None:
        monkeypatch.delenv("ASORA_LOG_FORMAT", raising=False)
    else:
        monkeypatch.setenv("ASORA_LOG_FORMAT", given)
    assert Settings().resolved_log_format == expected


def test_an_unknown_format_is_refused(monkeypatch):
    monkeypatch.setenv("ASORA_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        Settings()


def test_processes_the_stack_starts_write_json_unless_told_otherwise(tmp_path):
    probe = [sys.executable, "-c", "import os; print(os.environ['ASORA_LOG_FORMAT'])"]
    stack = Stack(env={"PATH": "/usr/bin:/bin"}, log_dir=tmp_path)
    stack._spawn("default", probe).wait(30)
    Stack(env={"ASORA_LOG_FORMAT": "console"}, log_dir=tmp_path)._spawn("chosen", probe).wait(30)
    assert stack.log_path("default").read_text().strip() == "json"
    assert stack.log_path("chosen").read_text().strip() == "console"


def test_each_attempt_of_a_job_writes_its_outcome_and_its_lines_name_it(service_urls, captured):
    """In process on real PostgreSQL and Redis: a job whose input cannot be parsed crashes on every attempt
    (retrying, then failed past the cap); the job after it completes. Every line a job writes, the crash's
    traceback included, names the job."""
    import time

    import redis
    from sqlalchemy import text

    from shared import db
    from shared.config import get_settings
    from shared.jobs import runner
    from shared.registry import TABLE
    from tests.support import create_tenant_direct, lot, query, sale, seed_items, submit_run_direct

    tenant_id = create_tenant_direct("logjob")
    seed_items(tenant_id, ["SKU-1"])
    _, broken = submit_run_direct(tenant_id, [sale("S1", "SKU-1", "2024-01-02", "1")])
    with db.unit_of_work(tenant_id) as session:
        session.execute(text("UPDATE job_blobs SET content = 'not json' WHERE job_id = :j"), {"j": broken})
    _, good = submit_run_direct(
        tenant_id, [sale("S2", "SKU-1", "2024-01-03", "1")], [lot("L1", "SKU-1", "2024-01-01", "5", "2")]
    )
    settings = get_settings()
    client = redis.Redis.from_url(service_urls["redis_url"])
    for _ in range(100):
        if query("SELECT status FROM jobs WHERE id = :j", {"j": good})[0][0] == "completed":
            break
        runner.drain_tenant(tenant_id, worker="test", redis_client=client, settings=settings, kinds=TABLE)
        time.sleep(0.05)

    written = lines(captured)
    finished = [line for line in written if line["event"] == "job.finished"]
    attempts = [line for line in finished if line["job_id"] == broken]
    assert [(a["attempt"], a["outcome"]) for a in attempts] == [
        *((n, "retrying") for n in range(1, settings.job_max_attempts)),
        (settings.job_max_attempts, "failed"),
    ]
    assert (attempts[-1]["code"], attempts[-1]["reason"]) == ("INTERNAL", "ATTEMPTS_EXHAUSTED")
    assert all(a["kind"] == "cogs_run" and a["tenant_id"] == tenant_id and a["stream"] == "ledger" for a in attempts)
    (done,) = [line for line in finished if line["job_id"] == good]
    assert (done["outcome"], done["attempt"], done["code"]) == ("completed", 1, None)
    assert done["duration_ms"] >= 0

    crashes = [line for line in written if "crashed" in line["event"]]
    assert crashes and all(c["job_id"] == broken and "exception" in c for c in crashes)


def test_uvicorns_own_access_line_gives_way_to_the_apis(captured):
    """Uvicorn logs the raw path and query of every request unless told not to (the deploy manifests do not):
    only the API's own access line, with the route's template, is written."""
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/api/v1/runs/run_1?x=1", "1.1", 200
    )
    logging.getLogger("uvicorn.error").warning("shutting down")
    assert [line["event"] for line in lines(captured)] == ["shutting down"]


def test_before_any_configuration_a_structlog_line_is_a_plain_record_never_a_print(capsys, caplog):
    """A process that never configures logging (the CLI, a test) must not find structlog lines on its stdout."""
    from shared.logs import get_logger

    with caplog.at_level(logging.INFO, logger="asora.jobs"):
        get_logger("asora.jobs").info("job.finished", outcome="completed")
    assert capsys.readouterr().out == ""
    (record,) = [r for r in caplog.records if r.name == "asora.jobs"]
    assert record.getMessage() == "job.finished"
    assert record.outcome == "completed"
