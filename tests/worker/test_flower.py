"""Flower tells the truth, read through its own HTTP API with basic auth: a task says which job, kind and tenant
it is for; a task whose job failed is FAILURE with the job's code and reason (never its message or payload),
one whose job completed is SUCCESS; and the history survives a Flower restart (persistent mode)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.embedded import ServiceUrls
from shared.stack import FLOWER_TASK_COLUMNS, Stack, free_port, service_env, wait_http
from tests.support import Api, lot, make_tenant, sale, seed_items, wait_for

AUTH = ("ops", "flower-truth-test")
MARKER = "PAYLOAD-MARKER-c41e"  # in the failing run's input only: Flower must never show it


@dataclass
class Flower:
    stack: Stack
    url: str
    port: int
    state_file: Path

    def start(self) -> None:
        self.stack.start_flower(self.port, state_file=self.state_file)
        assert wait_http(f"{self.url}/healthcheck", timeout=60), f"Flower did not start; see {self.stack.log_dir}"

    def stop(self) -> None:
        self.stack.stop("flower")

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", auth=AUTH, timeout=10, **kwargs)

    def task(self, job_id: str) -> dict[str, Any] | None:
        response = self.get(f"/api/task/info/{job_id}")
        return response.json() if response.status_code == 200 else None

    def finished(self, job_id: str) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            task = self.task(job_id)
            return task if task and task.get("state") in ("SUCCESS", "FAILURE") else None

        try:
            found: dict[str, Any] = wait_for(done, 90, "")
        except AssertionError:
            raise AssertionError(f"Flower never saw task {job_id} finish; it says {self.task(job_id)}") from None
        return found


@pytest.fixture
def flower(service_urls: dict[str, str], tmp_path: Path) -> Iterator[Flower]:
    urls = ServiceUrls(service_urls["database_url"], service_urls["redis_url"], False, False)
    extra = {k: v for k, v in os.environ.items() if k.startswith("ASORA_")}
    extra |= {"FLOWER_BASIC_AUTH": ":".join(AUTH), "FLOWER_UNAUTHENTICATED_API": "false"}
    stack = Stack(env=service_env(urls, extra), log_dir=tmp_path / "logs")
    port = free_port()
    running = Flower(stack, f"http://127.0.0.1:{port}", port, tmp_path / "flower.db")
    running.start()
    try:
        # Flower knows a worker once it has received that worker's events: from then on it sees every task.
        wait_for(lambda: running.get("/workers", params={"json": 1}).json()["data"], 60, "Flower saw no worker")
        yield running
    finally:
        stack.stop_all()


def _submit(owner: Api, sales: list[dict[str, Any]], lots: list[dict[str, Any]] | None = None) -> str:
    response = owner.post("/runs", json={"sales_data": sales, "lots_data": lots or []})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


def test_a_failed_job_is_failure_with_its_code_and_reason_and_history_survives_a_restart(
    shared_stack: str, flower: Flower
) -> None:
    assert httpx.get(f"{flower.url}/api/tasks", timeout=10).status_code == 401  # the login is required

    tenant_id, owner = make_tenant(shared_stack)
    seed_items(tenant_id, ["SKU-1"])
    good = _submit(owner, [sale("S1", "SKU-1", "2024-03-02", "1")], [lot("L1", "SKU-1", "2024-03-01", "5", "1")])
    # Fails in the worker (VALIDATION_FAILED: an unknown SKU, no stock for it); the sale's id and SKU, which its
    # validation errors' messages may quote, carry the marker.
    bad = _submit(owner, [sale(f"{MARKER}-sale", f"{MARKER}-SKU", "2024-03-03", "1")])
    # A second failing job on the same stream: it may run in the drain of an earlier job's task (and be
    # reported by that drain) or in its own; either way it must read FAILURE.
    worse = _submit(owner, [sale("S2", "SKU-1", "2024-03-04", "500")])  # more than the 4 left: INSUFFICIENT_STOCK
    assert owner.wait_job(good)["status"] == "completed"
    errors = {job_id: owner.wait_job(job_id)["error"] for job_id in (bad, worse)}
    assert errors[worse]["reason"] == "INSUFFICIENT_STOCK"

    succeeded = flower.finished(good)
    assert succeeded["state"] == "SUCCESS"
    for job_id, error in errors.items():
        failed = flower.finished(job_id)
        assert failed["state"] == "FAILURE", failed
        assert error["code"] == "VALIDATION_FAILED"
        assert f"JobFailed('job {job_id} failed: VALIDATION_FAILED ({error['reason']})')" == failed["exception"]
    failed = flower.finished(bad)

    # Each task says which job, kind and tenant it is for.
    for job_id, task in ((good, succeeded), (bad, failed)):
        assert task["uuid"] == job_id
        assert task["name"] == "asora.jobs.cogs_run"
        for value in (job_id, tenant_id, "cogs_run"):
            assert value in task["kwargs"]

    # Flower's Failed filter lists the failures and only them.
    failures = flower.get("/api/tasks", params={"state": "FAILURE"}).json()
    assert {bad, worse} <= set(failures)
    assert good not in failures

    # Nothing of the input, and no key, anywhere Flower shows tasks.
    shown = flower.get("/api/tasks").text + flower.get("/tasks").text
    assert MARKER not in shown
    assert owner.key not in shown

    # The task list's columns: kind (name), job id (uuid), state, tenant (kwargs) and the failure (exception).
    page = flower.get("/tasks").text
    for slug, label in (("name", "Name"), ("uuid", "UUID"), ("state", "State"), ("kwargs", "kwargs")):
        assert f'<th data-column="{slug}">{label}</th>' in page
    assert '<th data-column="exception">Exception</th>' in page
    assert FLOWER_TASK_COLUMNS.startswith("name,uuid,state,kwargs,exception")

    # Persistent mode: a restarted Flower still knows what happened before.
    flower.stop()
    assert list(flower.state_file.parent.glob(f"{flower.state_file.name}*")), "Flower saved no state"
    flower.start()
    after = flower.task(bad)
    assert after is not None, "the task history did not survive the restart"
    assert after["state"] == "FAILURE"
    assert after["exception"] == failed["exception"]
    restored = flower.task(good)
    assert restored is not None and restored["state"] == "SUCCESS"


def drain(connection: Any) -> None:
    with contextlib.suppress(TimeoutError):  # nothing more to read for now
        connection.drain_events(timeout=0.5)


def test_a_drain_reports_the_jobs_it_runs_for_other_tasks_to_flower(service_urls: dict[str, str]) -> None:
    """A drain runs every pending job of its stream; the ones whose own message has not come yet are reported
    by the drain under their own ids (received, started, failed or succeeded), read here from the broker's
    event stream exactly as Flower reads it. Deterministic: no worker, no timing."""
    from types import SimpleNamespace

    from shared.jobs import runner
    from shared.jobs.kinds import JobKind, JobStatus
    from worker.celery_app import app
    from worker.tasks.jobs import FlowerHooks

    task = SimpleNamespace(app=app, request=SimpleNamespace(hostname="drain-test@host"))
    hooks = FlowerHooks(task, own_job_id="job_own", tenant_id="t-events")  # type: ignore[arg-type]
    error = {"code": "VALIDATION_FAILED", "reason": "UNKNOWN_SKU", "message": f"{MARKER} is no item", "details": []}
    received: list[dict[str, Any]] = []
    with app.connection_for_read() as connection:
        receiver = app.events.Receiver(connection, handlers={"*": received.append})
        with receiver.Consumer() as (conn, _, _):
            # Redis delivers events by pub/sub: the receiver subscribes when it first polls, before anything is sent.
            drain(conn)
            hooks.started(runner.Claim("job_other", JobKind.COGS_RUN, 1))
            hooks.finished(runner.Finished("job_other", JobKind.COGS_RUN, JobStatus.FAILED, error=error))
            hooks.started(runner.Claim("job_own", JobKind.COGS_RUN, 1))  # its own task reports its own job
            hooks.finished(runner.Finished("job_own", JobKind.COGS_RUN, JobStatus.FAILED, error=error))

            def all_three() -> bool:
                drain(conn)
                return len([e for e in received if e.get("uuid") == "job_other"]) >= 3

            wait_for(all_three, 30, f"the drain's events never arrived; got {received}")
    events = [e for e in received if e.get("uuid") in ("job_other", "job_own")]
    assert [e["type"] for e in events] == ["task-received", "task-started", "task-failed"]
    assert {e["uuid"] for e in events} == {"job_other"}
    assert events[0]["name"] == "asora.jobs.cogs_run"
    assert "t-events" in events[0]["kwargs"] and "job_other" in events[0]["kwargs"]
    assert events[2]["exception"] == "JobFailed('job job_other failed: VALIDATION_FAILED (UNKNOWN_SKU)')"
    assert MARKER not in repr(events)
