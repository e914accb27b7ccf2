"""The shared stack's log files: JSON lines from the API (one access line per request), the worker (one line
per job attempt, with its context) and the relay; and not one line, in any file, that carries an API key, an
integration's signing secret or a payload."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from shared.integrations.secrets import generate_secret
from tests.receiver import Receiver
from tests.support import Api, make_tenant, sale, seed_master_data, wait_for


@pytest.fixture
def receiver():
    running = Receiver(answer=lambda _n: 500).start()  # every delivery fails: a failing dispatch
    yield running
    running.stop()


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of `path`, each of which must be one JSON object."""
    parsed = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if line.strip():
            try:
                parsed.append(json.loads(line))
            except json.JSONDecodeError:
                pytest.fail(f"{path.name} line {number} is not JSON: {line[:200]}")
    return parsed


def find_line(path: Path, timeout: float = 30, **fields: Any) -> dict[str, Any]:
    """The first line of `path` with these fields (waiting: a process writes after it answers)."""

    def probe() -> dict[str, Any] | None:
        if not path.exists():
            return None
        return next((line for line in json_lines(path) if fields.items() <= line.items()), None)

    found: dict[str, Any] = wait_for(probe, timeout, f"no line with {fields} in {path}")
    return found


def run(api: Api, sales: list[dict[str, Any]]) -> dict[str, Any]:
    accepted = api.post("/runs", json={"mode": "fifo", "dry_run": False, "sales_data": sales, "lots_data": []})
    assert accepted.status_code == 202, accepted.text
    return api.wait_job(accepted.json()["job_id"])


def test_every_process_writes_json_lines(shared_stack, shared_stack_logs):
    tenant_id, owner = make_tenant(shared_stack, prefix="logs")
    request_id = f"logs-{secrets.token_hex(4)}"
    owner.get("/runs", headers={"X-Request-ID": request_id})

    access = find_line(shared_stack_logs / "api.log", request_id=request_id, event="request")
    assert access["tenant_id"] == tenant_id
    assert access["route"] == "/runs" and access["method"] == "GET" and access["status"] == 200
    assert access["service"] == "api" and access["duration_ms"] >= 0

    find_line(shared_stack_logs / "relay.log", event="relay started", service="relay")
    for name in ("api.log", "worker0.log", "relay.log"):
        assert json_lines(shared_stack_logs / name), f"{name} is empty"


def test_a_job_writes_one_line_with_its_context_and_outcome(shared_stack, shared_stack_logs):
    tenant_id, owner = make_tenant(shared_stack, prefix="logs")
    md = seed_master_data(owner, skus=("LOG-1",))
    received = owner.post(
        "/receipts",
        json={"vendor_id": md.vendor_id, "received_at": "2024-07-01T00:00:00Z",
              "lines": [{"sku": "LOG-1", "quantity": 5, "unit_cost": 2}]},
    )  # fmt: skip
    assert received.status_code == 202, received.text
    completed = owner.wait_job(received.json()["job_id"])
    failed = run(owner, [sale("s-1", "LOG-1", "2024-07-02", "50")])  # more than was received
    assert (completed["status"], failed["status"]) == ("completed", "failed")

    worker_log = shared_stack_logs / "worker0.log"
    done = find_line(worker_log, event="job.finished", job_id=completed["job_id"])
    assert done["outcome"] == "completed" and done["status"] == "completed"
    assert done["kind"] == "receipt" and done["tenant_id"] == tenant_id and done["attempt"] == 1
    assert done["code"] is None and done["duration_ms"] >= 0
    assert done["service"] == "worker" and done["level"] == "info"

    refused = find_line(worker_log, event="job.finished", job_id=failed["job_id"])
    assert refused["outcome"] == "failed" and refused["kind"] == "cogs_run" and refused["attempt"] == 1
    assert (refused["code"], refused["reason"]) == (failed["error"]["code"], failed["error"]["reason"])
    assert refused["tenant_id"] == tenant_id and refused["level"] == "warning"


def test_no_log_line_carries_a_key_a_secret_or_a_payload(shared_stack, shared_stack_logs, receiver):
    marker = f"PAYLOAD-MARKER-{secrets.token_hex(6)}"
    tenant_id, owner = make_tenant(shared_stack, prefix="logs")
    md = seed_master_data(owner, skus=("LOG-2",))
    secret = generate_secret()  # sent in a request body, kept encrypted, used to sign every delivery
    body = {"name": "erp", "url": receiver.url, "events": ["receipt.posted", "run.completed"], "secret": secret}
    integration = owner.post("/integrations", json=body)
    assert integration.status_code == 201, integration.text
    receiver.secrets = [secret]

    # A payload marker in a receipt (its webhook payload carries it) and in a run that fails and one that does not.
    received = owner.post(
        "/receipts",
        json={"vendor_id": md.vendor_id, "received_at": "2024-07-01T00:00:00Z",
              "lines": [{"sku": "LOG-2", "quantity": 5, "unit_cost": 2, "lot_id": f"lot-{marker}"}]},
    )  # fmt: skip
    assert received.status_code == 202, received.text
    assert owner.wait_job(received.json()["job_id"])["status"] == "completed"
    assert run(owner, [sale(f"sale-{marker}", "LOG-2", "2024-07-02", "500")])["status"] == "failed"
    assert run(owner, [sale(f"ok-{marker}", "LOG-2", "2024-07-02", "1")])["status"] == "completed"
    dispatch = owner.post(f"/integrations/{integration.json()['id']}/dispatch")
    assert dispatch.status_code == 202, dispatch.text
    assert owner.wait_job(dispatch.json()["job_id"])["status"] == "failed"  # the receiver answers 500
    assert receiver.arrivals, "the dispatch never reached the receiver"
    # Refusals log too: a wrong key, a key in the wrong place, a body that does not parse.
    Api(shared_stack, owner.key + "x").get("/runs")
    owner.post("/categories", content=f'{{"name": "{marker}", '.encode(), headers={"Content-Type": "application/json"})

    # The last requests' lines are written before this test reads (each process writes as it goes).
    find_line(shared_stack_logs / "worker0.log", event="job.finished", job_id=dispatch.json()["job_id"])
    find_line(shared_stack_logs / "api.log", event="request", route="/categories", status=422, tenant_id=tenant_id)

    files = sorted(p for p in shared_stack_logs.rglob("*.log") if p.is_file())
    assert {p.name for p in files} >= {"api.log", "worker0.log", "relay.log"}
    for path in files:
        text = path.read_text(errors="replace")
        for label, value in (("the API key", owner.key), ("the signing secret", secret), ("the payload", marker)):
            assert value not in text, f"{path.name} carries {label}"
        json_lines(path)  # and every line is JSON
