"""Celery adapters over the job runner: one task name per job kind, each message naming its job.

A task drains its job's stream (which runs every pending job of the stream, in order, whichever message
arrived first) and then ends the way its own job ended: SUCCESS with a summary, or FAILURE with the job's
code and reason (never its message, details or payload: they may quote the input). A job executed by
another task's drain is reported to Flower by that drain, under the job's own task id; a task whose job is
still in another drain's hands ends without a state of its own (Ignore), so Flower keeps the state that
drain reports.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from typing import Any

from celery import Task
from celery.exceptions import Ignore
from celery.signals import worker_shutting_down
from sqlalchemy import select

from shared import db, registry
from shared.config import get_settings
from shared.jobs import outbox, runner
from shared.jobs.kinds import LEDGER_STREAM, PENDING, JobKind, JobStatus
from shared.jobs.models import Job
from worker.celery_app import app
from worker.publisher import publish, redis_client, task_name

log = logging.getLogger("asora.worker")

# Set in the main process when a warm shutdown begins; prefork children share it (created before they fork),
# so a drain stops claiming new jobs at once and the worker can exit within its grace period.
_shutting_down = multiprocessing.RawValue("b", 0)


@worker_shutting_down.connect
def _on_shutdown(**_: Any) -> None:
    _shutting_down.value = 1


def shutting_down() -> bool:
    return bool(_shutting_down.value)


class JobFailed(Exception):
    """The job this task is for failed: the task ends in FAILURE and Flower shows this exception.

    It carries the job's id, code and reason and nothing else. The error's message and details may quote the
    input (a SKU, a row's values) and Flower shows exceptions to anyone who can log in to it. Tasks declare it
    in `throws`: an expected outcome, logged in one line without a traceback. Celery never retries it (no
    task retries; the runner alone decides a job's attempts, and a failed job is final)."""

    def __init__(self, message: str, code: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.code, self.reason = code, reason

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (Celery's exception handling) keep code and reason
        return (self.__class__, (str(self), self.code, self.reason))

    @classmethod
    def of(cls, job_id: str, error: dict[str, Any] | None) -> JobFailed:
        error = error or {}
        code, reason = str(error.get("code") or "INTERNAL"), str(error.get("reason") or "")
        label = f"{code} ({reason})" if reason and reason != code else code
        return cls(f"job {job_id} failed: {label}", code, reason)


def _summary(job_id: str, kind: str, tenant_id: str, result: dict[str, Any] | None) -> dict[str, Any]:
    return {"job_id": job_id, "kind": kind, "tenant_id": tenant_id, "status": "completed", "result": result}


_events: dict[str, Any] = {}


def _dispatcher(task: Task[Any, Any]) -> Any:
    """One event dispatcher per worker process (making one per event cost a sixth of a small job)."""
    dispatcher = _events.get("dispatcher")
    if dispatcher is None:
        dispatcher = task.app.events.Dispatcher(task.app.connection_for_write(), hostname=task.request.hostname)
        _events["dispatcher"] = dispatcher
    return dispatcher


class FlowerHooks(runner.DrainHooks):
    """Reports each job a drain executes under that job's own task id (its message may still be queued)."""

    def __init__(self, task: Task[Any, Any], own_job_id: str, tenant_id: str) -> None:
        self.task, self.own, self.tenant_id = task, own_job_id, tenant_id

    def _send(self, event: str, job_id: str, **fields: Any) -> None:
        try:
            # The dispatcher adds the hostname, pid and clock itself (a `pid` here made every send fail).
            _dispatcher(self.task).send(event, uuid=job_id, timestamp=time.time(), **fields)
        except Exception as exc:  # Flower is a view: a failed event never fails a job
            _events.pop("dispatcher", None)
            log.warning("could not send %s for job %s: %s: %s", event, job_id, exc.__class__.__name__, exc)

    def started(self, claim: runner.Claim) -> None:
        if claim.job_id != self.own:
            # Its own message may never come (wake-ups are coalesced per stream), so say what it is, as the
            # worker that receives a message would.
            kwargs = {"job_id": claim.job_id, "tenant_id": self.tenant_id, "kind": str(claim.kind)}
            self._send("task-received", claim.job_id, name=task_name(claim.kind), args="()", kwargs=repr(kwargs))
            self._send("task-started", claim.job_id)

    def finished(self, outcome: runner.Finished) -> None:
        if outcome.job_id == self.own:
            return
        if outcome.status == JobStatus.COMPLETED:
            summary = _summary(outcome.job_id, outcome.kind, self.tenant_id, outcome.result)
            self._send("task-succeeded", outcome.job_id, result=repr(summary), runtime=outcome.runtime)
        elif outcome.status == JobStatus.FAILED:
            self._send(
                "task-failed", outcome.job_id, exception=repr(JobFailed.of(outcome.job_id, outcome.error)), traceback=""
            )
        else:
            self._send("task-retried", outcome.job_id, exception="re-queued after a crash", traceback="")

    def more_work(self, stream: runner.Stream) -> None:
        with db.unit_of_work(stream.tenant_id) as session:
            head = session.scalar(
                select(Job)
                .where(Job.tenant_id == stream.tenant_id, Job.stream == stream.name, Job.status.in_(PENDING))
                .order_by(Job.seq)
                .limit(1)
            )
        if head is not None:
            publish([outbox.Wakeup(head.id, head.tenant_id, head.kind, head.stream)])


def run_job(task: Task[Any, Any], job_id: str, tenant_id: str, kind: str, stream: str) -> dict[str, Any]:
    report = runner.drain(
        runner.Stream(tenant_id, stream),
        worker=str(task.request.hostname),
        redis_client=redis_client(),
        settings=get_settings(),
        kinds=registry.TABLE,
        hooks=FlowerHooks(task, job_id, tenant_id),
        stopping=shutting_down,
    )
    own = next((o for o in report.outcomes if o.job_id == job_id and o.status != JobStatus.QUEUED), None)
    # This drain ran the task's own job: its outcome is known without asking the database again.
    state = (own.status, own.error, own.result) if own else runner.job_state(tenant_id, job_id)
    if state is None or state[0] in PENDING:
        raise Ignore()  # a bogus message, or a job in another drain's hands (that drain reports it)
    status, error, result = state
    if status == JobStatus.FAILED:
        raise JobFailed.of(job_id, error)
    return _summary(job_id, kind, tenant_id, result)


def _register(kind: JobKind) -> None:
    @app.task(name=task_name(kind), bind=True, throws=(JobFailed,))
    def execute(
        self: Task[Any, Any], job_id: str, tenant_id: str, kind: str = str(kind), stream: str = LEDGER_STREAM
    ) -> dict[str, Any]:
        return run_job(self, job_id, tenant_id, kind, stream)


for _kind in JobKind:
    _register(_kind)


@app.task(name="asora.jobs.execute", bind=True, throws=(JobFailed,))
def execute_legacy(self: Task[Any, Any], job_id: str, kind: str, tenant_id: str) -> dict[str, Any]:
    """Messages published before task names were per kind (kept while such messages may be queued)."""
    return run_job(self, job_id, tenant_id, kind, LEDGER_STREAM)


@app.task(name="asora.jobs.reap")
def reap() -> list[dict[str, Any]]:
    return runner.reap_stale_jobs(get_settings(), registry.TABLE)
