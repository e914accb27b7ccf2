"""The return job, executed inside the tenant's fenced transaction; it queues `return.posted` for subscribed
integrations in that transaction. Its status lives on the job (GET /returns/{id} reads it from there)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from shared.errors import DomainError
from shared.integrations import events
from shared.integrations.models import EventName
from shared.jobs.models import Job
from shared.returns import service as returns


class ReturnJob:
    def status_changed(self, session: Session, job: Job, error: DomainError | None = None) -> None:
        """Nothing to mirror: a return's status is its job's."""

    def execute(self, session: Session, job: Job) -> dict[str, Any]:
        result = returns.post_return(session, job)
        events.emit(session, job.tenant_id, EventName.RETURN_POSTED, {"job_id": job.id, **result})
        return result
