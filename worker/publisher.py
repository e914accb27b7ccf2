"""Handing job wake-ups to the broker: the publisher the API and the workers install in
`shared.jobs.outbox` (after commit), and the one the relay calls for outbox rows it re-sends.

Each message is a task named for the job's kind (`asora.jobs.cogs_run`, ...) whose id is the job's id, with
the job, tenant, kind and stream as its only arguments: Flower lists every job under its own id, and a
re-sent wake-up is the same task again. Payloads and secrets never travel in a message."""

from __future__ import annotations

from collections.abc import Iterable

from shared.jobs.kinds import JobKind
from shared.jobs.outbox import Wakeup
from shared.registry import queue_for
from worker.celery_app import app


def task_name(kind: JobKind) -> str:
    return f"asora.jobs.{kind}"


def publish(wakeups: Iterable[Wakeup]) -> list[str]:
    """Send one message per job; returns the ids sent. A message only says "this stream has work"."""
    published = []
    with app.producer_or_acquire() as producer:
        for wakeup in wakeups:
            app.send_task(
                task_name(wakeup.kind),
                kwargs={
                    "job_id": wakeup.job_id,
                    "tenant_id": wakeup.tenant_id,
                    "kind": str(wakeup.kind),
                    "stream": wakeup.stream,
                },
                task_id=wakeup.job_id,
                queue=queue_for(wakeup.kind),
                producer=producer,
            )
            published.append(wakeup.job_id)
    return published
