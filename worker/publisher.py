"""Handing jobs to the broker. Used after commit by the API and by the outbox relay."""

from __future__ import annotations

from collections.abc import Iterable

from shared.jobs.models import Job
from worker.celery_app import app

TASK_NAME = "asora.jobs.execute"


def publish(jobs: Iterable[Job]) -> list[str]:
    published = []
    for job in jobs:
        app.send_task(
            TASK_NAME,
            kwargs={"job_id": job.id, "kind": job.kind, "tenant_id": job.tenant_id},
            queue=job.queue,
        )
        published.append(job.id)
    return published
