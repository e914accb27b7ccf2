"""Integrations end to end on the shared stack, against a real receiver on 127.0.0.1: payloads queued with the
facts they report, signed, delivered in order only when a dispatch is asked for, stopped at the first failure,
never retried by themselves, and never holding up the tenant's books."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from tests.receiver import Receiver
from tests.support import Api, MasterData, make_tenant, operator, query, seed_master_data

EVENTS = ["receipt.posted", "count.posted", "run.completed", "run.rolled_back", "export.completed"]


@pytest.fixture
def receiver():
    running = Receiver().start()
    yield running
    running.stop()


def _tenant(base: str, plan: str = "enterprise") -> tuple[str, Api, MasterData]:
    tenant_id, owner = make_tenant(base, plan=plan, prefix="int")
    return tenant_id, owner, seed_master_data(owner, skus=("INT-1",))


def _integrate(owner: Api, receiver: Receiver, **extra: Any) -> dict[str, Any]:
    response = owner.post("/integrations", json={"name": "erp", "url": receiver.url, "events": EVENTS, **extra})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    receiver.secrets = [created["secret"]]
    return created


def _receive(owner: Api, md: MasterData, n: int = 1) -> list[str]:
    jobs = []
    for k in range(n):
        response = owner.post(
            "/receipts",
            json={
                "vendor_id": md.vendor_id,
                "received_at": f"2024-07-{k + 1:02d}T00:00:00Z",
                "lines": [{"sku": "INT-1", "quantity": 1 + k, "unit_cost": 2}],
            },
        )
        assert response.status_code == 202, response.text
        jobs.append(response.json()["job_id"])
    for job_id in jobs:
        assert owner.wait_job(job_id)["status"] == "completed"
    return jobs


def _outbox(owner: Api, integration_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = owner.get(f"/integrations/{integration_id}/outbox", params={"limit": 1000}).json()[
        "items"
    ]
    return items


def _dispatch(api: Api, integration_id: str, **kwargs: Any) -> dict[str, Any]:
    response = api.post(f"/integrations/{integration_id}/dispatch", **kwargs)
    assert response.status_code == 202, response.text
    return api.wait_job(response.json()["job_id"], timeout=90)


def test_a_secret_is_generated_in_the_standard_form_and_shown_once(shared_stack, receiver):
    _, owner, _ = _tenant(shared_stack)
    created = _integrate(owner, receiver)
    assert created["secret"].startswith("whsec_") and len(created["secret"]) == 6 + 44
    shown = owner.get(f"/integrations/{created['id']}").text + owner.get("/integrations").text
    assert created["secret"] not in shown and "secret" not in owner.get(f"/integrations/{created['id']}").json()
    given = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="
    again = owner.post("/integrations", json={"name": "b", "url": receiver.url, "events": EVENTS, "secret": given})
    assert again.status_code == 201 and again.json()["secret"] == given
    for bad in ("plain-text", "whsec_not base64!", "whsec_" + "QUJD"):
        refused = owner.post("/integrations", json={"name": "c", "url": receiver.url, "events": EVENTS, "secret": bad})
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["reason"] == "BAD_SECRET"
        assert bad not in refused.text


def test_credentials_in_the_url_are_redacted_everywhere_after_creation(shared_stack, receiver):
    _, owner, md = _tenant(shared_stack)
    url = receiver.url.replace("http://", "http://user:hunter2@") + "?token=s3cr3t&x=1"
    created = _integrate(owner, receiver, url=url)
    redacted = created["url"]
    assert "hunter2" not in redacted and "s3cr3t" not in redacted
    assert redacted.startswith("http://***@127.0.0.1:") and redacted.endswith("/hook?token=***&x=***")
    assert owner.get(f"/integrations/{created['id']}").json()["url"] == redacted
    _receive(owner, md)
    _dispatch(owner, created["id"])
    assert receiver.arrivals[0].headers.get("Authorization", "").startswith("Basic ")  # the receiver still gets them
    audit = owner.get("/audit", params={"limit": 1000}).text
    assert "hunter2" not in audit and "s3cr3t" not in audit


def test_payloads_are_queued_with_their_facts_and_sent_only_when_dispatched(shared_stack, receiver):
    tenant_id, owner, md = _tenant(shared_stack)
    created = _integrate(owner, receiver)
    _receive(owner, md, 2)
    refused = owner.post(
        "/receipts",
        json={"vendor_id": md.vendor_id, "received_at": "2024-07-09T00:00:00Z",
              "lines": [{"sku": "NOT-AN-ITEM", "quantity": 1, "unit_cost": 1}]},
    )  # fmt: skip
    assert refused.status_code == 422  # refused at intake: no job, no fact, no payload
    entries = _outbox(owner, created["id"])
    assert [(e["type"], e["status"], e["position"]) for e in entries] == [
        ("receipt.posted", "queued", 1),
        ("receipt.posted", "queued", 2),
    ]
    payload = entries[0]["payload"]
    assert set(payload) == {"event_id", "type", "tenant_id", "occurred_at", "data"}
    assert payload["tenant_id"] == tenant_id and payload["event_id"] == entries[0]["event_id"]
    assert payload["data"]["total_quantity"] == "1.0000" and payload["data"]["total_value"] == "2.00000000"
    time.sleep(2)
    assert receiver.arrivals == [], "nothing is sent until a dispatch is asked for"

    job = _dispatch(operator(shared_stack, tenant_id), created["id"])  # operators may dispatch
    assert job["status"] == "completed", job
    assert receiver.event_ids() == [e["event_id"] for e in entries]  # in order
    for arrival in receiver.arrivals:
        assert arrival.asora_valid_with == receiver.secrets, "X-Asora-Signature does not verify"
        assert arrival.standard_valid_with == receiver.secrets, "the Standard Webhooks signature does not verify"
        assert arrival.headers["webhook-id"] == arrival.event_id
    assert [e["status"] for e in _outbox(owner, created["id"])] == ["delivered", "delivered"]
    history = owner.get(f"/integrations/{created['id']}/dispatches").json()["items"]
    assert [(d["status"], d["sent"], d["delivered"], d["requested_by_role"]) for d in history] == [
        ("completed", 2, 2, "operator")
    ]
    inventory = query("SELECT count(*) FROM lots WHERE tenant_id = :t", {"t": tenant_id}, tenant_id)[0][0]
    assert inventory == 2  # dispatch never touches inventory


def test_a_failing_receiver_stops_the_dispatch_and_nothing_is_retried_by_itself(shared_stack, receiver):
    _, owner, md = _tenant(shared_stack)
    created = _integrate(owner, receiver)
    receiver.answer = lambda n: 500 if n == 3 else 200
    _receive(owner, md, 5)
    job = _dispatch(owner, created["id"])
    assert job["status"] == "failed"
    assert (job["error"]["code"], job["error"]["reason"]) == ("UNAVAILABLE", "DELIVERY_FAILED")
    entries = _outbox(owner, created["id"])
    assert [e["status"] for e in entries] == ["delivered", "delivered", "failed", "queued", "queued"]
    assert entries[2]["response_status"] == 500
    assert receiver.event_ids() == [e["event_id"] for e in entries[:3]]
    time.sleep(4)
    assert len(receiver.arrivals) == 3, "a request arrived by itself after the dispatch stopped"
    failures = [e for e in owner.get("/audit", params={"limit": 1000}).json()["items"]
                if e["action"] == "integration.dispatch_failed"]  # fmt: skip
    assert len(failures) == 1 and failures[0]["details"]["event_id"] == entries[2]["event_id"]
    history = owner.get(f"/integrations/{created['id']}/dispatches").json()["items"][0]
    assert (history["status"], history["sent"], history["delivered"]) == ("failed", 3, 2)
    assert history["stopped_at_event_id"] == entries[2]["event_id"]

    # The operator's explicit "send this again": the payload keeps its place, before 4 and 5.
    receiver.answer = lambda _n: 200
    requeued = owner.post(f"/integrations/{created['id']}/outbox/{entries[2]['event_id']}/requeue")
    assert requeued.status_code == 200 and requeued.json()["status"] == "queued"
    not_again = owner.post(f"/integrations/{created['id']}/outbox/{entries[0]['event_id']}/requeue")
    assert not_again.status_code == 422 and not_again.json()["error"]["reason"] == "NOT_REQUEUEABLE"
    assert _dispatch(owner, created["id"])["status"] == "completed"
    assert receiver.event_ids()[3:] == [e["event_id"] for e in entries[2:]]
    assert [e["status"] for e in _outbox(owner, created["id"])] == ["delivered"] * 5
    requeues = [e for e in owner.get("/audit", params={"limit": 1000}).json()["items"]
                if e["action"] == "integration.payload_requeued"]  # fmt: skip
    assert len(requeues) == 1


def test_the_same_dispatch_message_delivered_twice_at_once_sends_each_payload_once(shared_stack, receiver):
    tenant_id, owner, md = _tenant(shared_stack)
    created = _integrate(owner, receiver)
    receiver.before_answer = lambda _n: time.sleep(0.2)  # long enough for the copies to overlap
    _receive(owner, md, 4)
    accepted = owner.post(f"/integrations/{created['id']}/dispatch")
    assert accepted.status_code == 202
    from shared.jobs.kinds import JobKind, integration_stream
    from shared.jobs.outbox import Wakeup
    from worker.publisher import publish

    job_id = accepted.json()["job_id"]
    publish([Wakeup(job_id, tenant_id, JobKind.DISPATCH, integration_stream(created["id"]))] * 3)
    assert owner.wait_job(job_id)["status"] == "completed"
    time.sleep(1)
    ids = receiver.event_ids()
    assert len(ids) == 4 and len(set(ids)) == 4


def test_a_receiver_that_stalls_never_holds_up_the_tenants_receipts(shared_stack, receiver):
    _, owner, md = _tenant(shared_stack)
    created = _integrate(owner, receiver)
    _receive(owner, md, 1)
    stalled = threading.Event()

    def stall(_n: int) -> None:
        stalled.set()
        time.sleep(12)  # past the 10 s read timeout

    receiver.before_answer = stall
    accepted = owner.post(f"/integrations/{created['id']}/dispatch")
    assert accepted.status_code == 202
    assert stalled.wait(30), "the dispatch never reached the receiver"
    started = time.monotonic()
    receipt = _receive(owner, md, 1)
    assert time.monotonic() - started < 8, "the receipt waited for the dispatch"
    assert owner.get(f"/jobs/{accepted.json()['job_id']}").json()["status"] == "running"
    job = owner.wait_job(accepted.json()["job_id"], timeout=60)
    assert job["status"] == "failed"
    assert [e["status"] for e in _outbox(owner, created["id"])][:1] == ["outcome_unknown"]
    assert receipt


def test_disable_rotate_and_plan_ceilings(shared_stack, receiver):
    _, owner, md = _tenant(shared_stack)
    created = _integrate(owner, receiver)
    disabled = owner.post(f"/integrations/{created['id']}/disable")
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False
    _receive(owner, md, 1)
    assert _outbox(owner, created["id"]) == [], "a disabled integration queues nothing new"
    refused = owner.post(f"/integrations/{created['id']}/dispatch")
    assert refused.status_code == 422 and refused.json()["error"]["reason"] == "INTEGRATION_DISABLED"
    assert owner.post(f"/integrations/{created['id']}/enable").json()["enabled"] is True

    old = created["secret"]
    rotated = owner.post(f"/integrations/{created['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new.startswith("whsec_") and new != old
    receiver.secrets = [new, old]
    _receive(owner, md, 1)
    assert _dispatch(owner, created["id"])["status"] == "completed"
    arrival = receiver.arrivals[-1]
    assert sorted(arrival.asora_valid_with) == sorted([new, old]), "during the grace period both secrets verify"
    assert sorted(arrival.standard_valid_with) == sorted([new, old])
    actions = {e["action"] for e in owner.get("/audit", params={"limit": 1000}).json()["items"]}
    assert {
        "integration.created",
        "integration.disabled",
        "integration.enabled",
        "integration.secret_rotated",
    } <= actions
    audit_text = owner.get("/audit", params={"limit": 1000}).text
    assert new not in audit_text and old not in audit_text

    _, free_owner, _ = _tenant(shared_stack, plan="free")
    ceiling = free_owner.post("/integrations", json={"name": "x", "url": receiver.url, "events": EVENTS})
    assert ceiling.status_code == 402 and ceiling.json()["error"]["code"] == "PLAN_LIMIT_EXCEEDED"
    assert ceiling.json()["error"]["details"][0]["limit"] == "integrations"
    refusals = [e for e in free_owner.get("/audit").json()["items"] if e["outcome"] == "refused"]
    assert refusals and refusals[-1]["details"]["status"] == 402
    _, pro_owner, _ = _tenant(shared_stack, plan="pro")
    statuses = [
        pro_owner.post("/integrations", json={"name": f"p{n}", "url": receiver.url, "events": EVENTS}).status_code
        for n in range(6)
    ]
    assert statuses == [201] * 5 + [402]


def _asora(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "shared.cli.main", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_an_operator_dispatches_from_the_command_line(shared_stack, receiver):
    from tests.conftest import OPERATOR_KEY

    tenant_id, owner, md = _tenant(shared_stack)
    created = _integrate(owner, receiver)
    _receive(owner, md, 2)
    env = {**os.environ, "ASORA_API_URL": shared_stack, "ASORA_API_KEY": OPERATOR_KEY}
    done = _asora(env, "integrations", "dispatch", created["id"], "--tenant-id", tenant_id, "--wait", "--json")
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert (outcome["status"], outcome["dispatch"]["delivered"]) == ("completed", 2)
    assert len(receiver.arrivals) == 2
    listed = _asora(env, "integrations", "outbox", created["id"], "--tenant-id", tenant_id)
    assert listed.returncode == 0 and listed.stdout.count("delivered") == 2, listed.stdout
    missing = _asora(env, "integrations", "dispatch", "int_missing", "--tenant-id", tenant_id)
    assert missing.returncode == 1 and "not found" in missing.stderr and "Traceback" not in missing.stderr
