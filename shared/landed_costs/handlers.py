"""The landed-cost job, executed inside the tenant's fenced transaction; it queues `landed_cost.posted` for
subscribed integrations in that transaction. Its status lives on the job."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from shared.errors import DomainError
from shared.integrations import events
from shared.integrations.models import EventName
from shared.jobs.models import Job
from shared.landed_costs import service as landed_costs


class LandedCostJob:
    def status_changed(self, session: Session, job: Job, error: DomainError | None = None) -> None:
        """Nothing to mirror: a landed cost's status is its job's."""

    def execute(self, session: Session, job: Job) -> dict[str, Any]:
        result = landed_costs.post_landed_cost(session, job)
        events.emit(session, job.tenant_id, EventName.LANDED_COST_POSTED, {"job_id": job.id, **result})
        return result
