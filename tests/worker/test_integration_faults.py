"""Integrations under faults, on a stack of this module's own (it kills its worker): a payload whose worker died
after sending it and before recording the outcome ends `outcome_unknown` and is not sent again until an
operator requeues it; and after a whole scenario the signing secret appears nowhere but in the one answer
that created it (responses, logs, audit rows, outbox payloads, broker messages, Flower)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
import redis

from tests.receiver import Receiver
from tests.support import make_tenant, query, seed_master_data, start_stack, wait_for

pytestmark = pytest.mark.own_stack
FLOWER_AUTH = "ops:integration-faults"
FLOWER_LOGIN = ("ops", "integration-faults")
EVENTS = ["receipt.posted", "run.completed", "export.completed"]


@pytest.fixture(scope="module")
def stack(service_urls, tmp_path_factory):
    logs = Path(tmp_path_factory.mktemp("logs"))
    stack, base = start_stack(service_urls, logs, extra_env={"FLOWER_BASIC_AUTH": FLOWER_AUTH})
    yield stack, base, logs
    stack.stop_all()


def _receive(owner, vendor_id, n):
    for k in range(n):
        response = owner.post(
            "/receipts",
            json={"vendor_id": vendor_id, "received_at": f"2024-08-{k + 1:02d}T00:00:00Z",
                  "lines": [{"sku": "FAULT-1", "quantity": 1, "unit_cost": 3}]},
        )  # fmt: skip
        assert response.status_code == 202, response.text
        assert owner.wait_job(response.json()["job_id"])["status"] == "completed"


def test_a_worker_killed_after_sending_leaves_the_payload_outcome_unknown(stack):
    proc_stack, base, _ = stack
    _, owner = make_tenant(base, prefix="intfault")
    md = seed_master_data(owner, skus=("FAULT-1",))
    in_flight, killed = threading.Event(), threading.Event()
    receiver = Receiver()

    def hold_the_second(n: int) -> None:
        if n == 2:
            in_flight.set()
            killed.wait(30)

    receiver.before_answer = hold_the_second
    receiver.start()
    try:
        created = owner.post("/integrations", json={"name": "f", "url": receiver.url, "events": EVENTS}).json()
        receiver.secrets = [created["secret"]]
        _receive(owner, md.vendor_id, 3)
        dispatch = owner.post(f"/integrations/{created['id']}/dispatch").json()
        assert in_flight.wait(30), "the second payload never reached the receiver"
        proc_stack.stop("worker0", sig=signal.SIGKILL)  # sent, not yet recorded
        killed.set()
        proc_stack.start_worker(name="worker-after-kill")
        reap = subprocess.run(
            [sys.executable, "-m", "shared.cli.main", "runs", "reap", "--stale-after", "0"],
            env=proc_stack.env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert reap.returncode == 0, reap.stderr
        job = owner.wait_job(dispatch["job_id"])
        assert (job["status"], job["error"]["reason"]) == ("failed", "INTERRUPTED")
        outbox = owner.get(f"/integrations/{created['id']}/outbox").json()["items"]
        assert [e["status"] for e in outbox] == ["delivered", "outcome_unknown", "queued"]

        # A later dispatch does not send it again: it goes on after it, with the third.
        assert owner.wait_job(owner.post(f"/integrations/{created['id']}/dispatch").json()["job_id"])["status"] == (
            "completed"
        )
        assert receiver.event_ids() == [outbox[0]["event_id"], outbox[1]["event_id"], outbox[2]["event_id"]]
        assert [e["status"] for e in owner.get(f"/integrations/{created['id']}/outbox").json()["items"]] == [
            "delivered", "outcome_unknown", "delivered",
        ]  # fmt: skip
        # ... until an operator requeues it.
        requeued = owner.post(f"/integrations/{created['id']}/outbox/{outbox[1]['event_id']}/requeue")
        assert requeued.status_code == 200
        owner.wait_job(owner.post(f"/integrations/{created['id']}/dispatch").json()["job_id"])
        assert receiver.event_ids()[-1] == outbox[1]["event_id"]
    finally:
        killed.set()
        receiver.stop()


def test_the_secret_appears_nowhere_after_a_full_scenario(stack, service_urls):
    from shared.stack import free_port, wait_http

    proc_stack, base, logs = stack
    tenant_id, owner = make_tenant(base, prefix="intsweep")
    md = seed_master_data(owner, skus=("FAULT-1",))
    receiver = Receiver().start()
    port = free_port()
    proc_stack.start_flower(port)  # before anything happens: Flower sees the events from its start
    flower = f"http://127.0.0.1:{port}"
    assert wait_http(f"{flower}/healthcheck", timeout=30)
    try:
        response = owner.post("/integrations", json={"name": "sweep", "url": receiver.url, "events": EVENTS})
        created = response.json()
        secret = created["secret"]
        receiver.secrets = [secret]
        rotated = owner.post(f"/integrations/{created['id']}/rotate-secret").json()["secret"]
        receiver.secrets = [rotated, secret]
        _receive(owner, md.vendor_id, 2)
        owner.post(f"/integrations/{created['id']}/disable")
        owner.post(f"/integrations/{created['id']}/enable")
        owner.post(f"/integrations/{created['id']}", json={"name": "renamed"})
        job = owner.wait_job(owner.post(f"/integrations/{created['id']}/dispatch").json()["job_id"])
        assert job["status"] == "completed"
        assert all(a.standard_valid_with for a in receiver.arrivals)
        seen: list[str] = []
        one = f"/integrations/{created['id']}"
        for path in ("/integrations", one, f"{one}/outbox", f"{one}/dispatches", "/audit", f"/jobs/{job['job_id']}"):
            seen.append(owner.get(path, params={"limit": 1000}).text)
        tasks = wait_for(
            lambda: (
                (r := httpx.get(f"{flower}/api/tasks", auth=FLOWER_LOGIN, timeout=5)).status_code == 200
                and job["job_id"] in r.text
                and r.text
            ),
            30,
            "Flower never showed the dispatch task",
        )
        seen.append(tasks)
        seen += [p.read_text(errors="replace") for p in logs.glob("*.log")]
        rows = query(
            "SELECT coalesce(details::text, '') FROM audit_events WHERE tenant_id = :t "
            "UNION ALL SELECT payload::text FROM integration_outbox WHERE tenant_id = :t "
            "UNION ALL SELECT payload::text || coalesce(result::text, '') || coalesce(error::text, '') FROM jobs "
            "WHERE tenant_id = :t",
            {"t": tenant_id},
        )
        seen += [r[0] for r in rows]
        client = redis.Redis.from_url(service_urls["redis_url"], decode_responses=True)
        for key in client.scan_iter(count=1000):
            kind = client.type(key)
            if kind == "list":
                seen += [str(v) for v in client.lrange(key, 0, -1)]
            elif kind == "string":
                seen.append(str(client.get(key) or ""))
            elif kind == "hash":
                seen += [str(v) for v in client.hvals(key)]
        everything = "\n".join(seen)
        assert len(everything) > 10_000, "the sweep looked at too little to prove anything"
        for value in (secret, rotated, secret.removeprefix("whsec_"), rotated.removeprefix("whsec_")):
            assert value not in everything
        stored = query("SELECT secret_encrypted FROM integrations WHERE id = :i", {"i": created["id"]}, tenant_id)
        assert secret.encode() not in bytes(stored[0][0]) and rotated.encode() not in bytes(stored[0][0])
    finally:
        proc_stack.stop("flower")
        receiver.stop()
