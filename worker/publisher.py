"""Handing job wake-ups to the broker: the publisher the API and the workers install in
`shared.jobs.outbox` (after commit), and the one the relay calls for outbox rows it re-sends."""

from __future__ import annotations

from collections.abc import Iterable

from shared.jobs.outbox import Wakeup
from worker.celery_app import app

TASK_NAME = "asora.jobs.execute"


def publish(wakeups: Iterable[Wakeup]) -> list[str]:
    """Send one message per job; returns the ids sent. A message only says "this tenant has work"."""
    published = []
    with app.producer_or_acquire() as producer:
        for wakeup in wakeups:
            app.send_task(
                TASK_NAME,
                kwargs={"job_id": wakeup.job_id, "kind": wakeup.kind, "tenant_id": wakeup.tenant_id},
                queue=wakeup.kind.queue,
                producer=producer,
            )
            published.append(wakeup.job_id)
    return published
